/* Forward mode through __enzyme_fwddiff: scalar tangents, array tangents, a duplicated
 * output array, enzyme_dupnoneed. */
#include "check.h"

extern double __enzyme_fwddiff(void *, ...);
extern void __enzyme_fwddiff_void(void *, ...) __asm__("__enzyme_fwddiff");

double f(double x, double y) { return x * x * y + log(y); }
double dot(const double *a, const double *b, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}
void square_all(double *y, const double *x, int n) {
  for (int i = 0; i < n; i++) y[i] = x[i] * x[i];
}

int main(void) {
  APPROX_EQ(__enzyme_fwddiff((void *)f, 3.0, 1.0, 2.0, 0.0), 12.0, 1e-12);
  APPROX_EQ(__enzyme_fwddiff((void *)f, 3.0, 0.0, 2.0, 1.0), 9.0 + 0.5, 1e-12);

  double a[3] = {1, 2, 3}, da[3] = {1, 0, 0}, b[3] = {4, 5, 6}, db[3] = {0, 1, 0};
  APPROX_EQ(__enzyme_fwddiff((void *)dot, enzyme_dup, a, da, enzyme_dup, b, db, enzyme_const, 3),
            4.0 + 2.0, 1e-12);

  double x[3] = {1, 2, 3}, dx[3] = {1, 1, 1}, y[3], dy[3];
  __enzyme_fwddiff_void((void *)square_all, enzyme_dupnoneed, y, dy, enzyme_dup, x, dx,
                        enzyme_const, 3);
  for (int i = 0; i < 3; i++) APPROX_EQ(dy[i], 2 * x[i], 1e-12);
  return failures;
}
