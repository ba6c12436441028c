/* Heap memory inside differentiated code: malloc, realloc (a growing buffer) and free. */
#include "check.h"
#include <stdlib.h>
#include <string.h>

extern double __enzyme_autodiff(void *, ...);

double grow_and_sum(double x, int n) {
  int cap = 1, len = 0;
  double *buf = (double *)malloc(cap * sizeof(double));
  for (int i = 0; i < n; i++) {
    if (len == cap) {
      cap *= 2;
      buf = (double *)realloc(buf, cap * sizeof(double));
    }
    buf[len++] = x * (i + 1);
  }
  double s = 0;
  for (int i = 0; i < len; i++) s += buf[i] * buf[i];
  free(buf);
  return s;
}

double temp_copy(const double *x, int n) {
  double *t = (double *)malloc(n * sizeof(double));
  for (int i = 0; i < n; i++) t[i] = sin(x[i]);
  double s = 0;
  for (int i = 0; i < n; i++) s += t[i];
  free(t);
  return s;
}

extern void __enzyme_autodiff_void(void *, ...) __asm__("__enzyme_autodiff");

int main(void) {
  /* sum over i of (x (i+1))^2 = x^2 * n(n+1)(2n+1)/6 */
  int n = 5;
  double k = n * (n + 1) * (2 * n + 1) / 6.0;
  APPROX_EQ(grow_and_sum(1.5, n), 2.25 * k, 1e-9);
  APPROX_EQ(__enzyme_autodiff((void *)grow_and_sum, 1.5, enzyme_const, n), 2 * 1.5 * k, 1e-9);

  double x[4] = {0.1, 0.2, 0.3, 0.4}, dx[4] = {0, 0, 0, 0};
  __enzyme_autodiff_void((void *)temp_copy, enzyme_dup, x, dx, enzyme_const, 4);
  for (int i = 0; i < 4; i++) APPROX_EQ(dx[i], cos(x[i]), 1e-12);
  return failures;
}
