/* OpenMP parallel loops differentiated by Enzyme's own pass (compile with -fopenmp).
 * (A reduction clause is not differentiable by this Enzyme: see test_errors.py.) */
#include "check.h"
#include <omp.h>

extern void __enzyme_autodiff(void *, ...);

void scale(double *y, const double *x, int n) {
#pragma omp parallel for
  for (int i = 0; i < n; i++) y[i] = 3.0 * x[i] * x[i];
}

void sines(double *y, const double *x, int n) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; i++) y[i] = sin(x[i]) * x[i];
}

int main(void) {
  enum { N = 64 };
  double x[N], dx[N], y[N], dy[N];
  for (int i = 0; i < N; i++) { x[i] = 0.01 * i; dx[i] = 0; dy[i] = 1; }
  __enzyme_autodiff((void *)scale, enzyme_dupnoneed, y, dy, enzyme_dup, x, dx, enzyme_const, N);
  for (int i = 0; i < N; i++) APPROX_EQ(dx[i], 6.0 * x[i], 1e-12);
  for (int i = 0; i < N; i++) { dx[i] = 0; dy[i] = 1; }
  __enzyme_autodiff((void *)sines, enzyme_dupnoneed, y, dy, enzyme_dup, x, dx, enzyme_const, N);
  for (int i = 0; i < N; i++) APPROX_EQ(dx[i], cos(x[i]) * x[i] + sin(x[i]), 1e-12);
  return failures;
}
