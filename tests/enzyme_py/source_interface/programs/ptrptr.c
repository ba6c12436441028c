/* A pointer to pointers (double **) through __enzyme_autodiff and __enzyme_fwddiff:
 * the shadow is an array of shadow rows. */
#include "check.h"

extern void __enzyme_autodiff(void *, ...);
extern double __enzyme_fwddiff(void *, ...);

double frob(double **rows, int m, int n) {
  double s = 0;
  for (int r = 0; r < m; r++)
    for (int c = 0; c < n; c++) s += (r + 1) * rows[r][c] * rows[r][c];
  return s;
}

int main(void) {
  double a[2] = {1, 2}, b[2] = {3, 4};
  double da[2] = {0, 0}, db[2] = {0, 0};
  double *rows[2] = {a, b}, *drows[2] = {da, db};
  __enzyme_autodiff((void *)frob, enzyme_dup, rows, drows, enzyme_const, 2, enzyme_const, 2);
  APPROX_EQ(da[0], 2 * 1, 1e-12);
  APPROX_EQ(da[1], 2 * 2, 1e-12);
  APPROX_EQ(db[0], 2 * 2 * 3, 1e-12);
  APPROX_EQ(db[1], 2 * 2 * 4, 1e-12);

  double ta[2] = {1, 0}, tb[2] = {0, 1};
  double *trows[2] = {ta, tb};
  APPROX_EQ(__enzyme_fwddiff((void *)frob, enzyme_dup, rows, trows, enzyme_const, 2,
                             enzyme_const, 2), 2 * 1 + 2 * 2 * 4, 1e-12);
  return failures;
}
