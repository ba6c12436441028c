/* Structs through __enzyme_autodiff: a struct holding a pointer and a float field, with
 * a shadow struct pointing at shadow memory; an array of structs. */
#include "check.h"

extern void __enzyme_autodiff(void *, ...);

struct Series { double *values; double scale; int n; };
struct Point { double x, y; int id; };

double energy(const struct Series *s) {
  double e = 0;
  for (int i = 0; i < s->n; i++) e += s->scale * s->values[i] * s->values[i];
  return e;
}
double spread(const struct Point *p, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += p[i].x * p[i].y;
  return s;
}

int main(void) {
  double v[3] = {1, 2, 3}, dv[3] = {0, 0, 0};
  struct Series s = {v, 0.5, 3}, ds = {dv, 0.0, 3};
  __enzyme_autodiff((void *)energy, enzyme_dup, &s, &ds);
  for (int i = 0; i < 3; i++) APPROX_EQ(dv[i], 2 * 0.5 * v[i], 1e-12);
  APPROX_EQ(ds.scale, 1 + 4 + 9, 1e-12);

  struct Point p[2] = {{1, 2, 7}, {3, 4, 8}}, dp[2] = {{0, 0, 7}, {0, 0, 8}};
  __enzyme_autodiff((void *)spread, enzyme_dup, p, dp, enzyme_const, 2);
  APPROX_EQ(dp[0].x, 2, 1e-12);
  APPROX_EQ(dp[0].y, 1, 1e-12);
  APPROX_EQ(dp[1].x, 4, 1e-12);
  APPROX_EQ(dp[1].y, 3, 1e-12);
  return failures;
}
