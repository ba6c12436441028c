/* Reverse mode through __enzyme_autodiff: active scalars (returned, also two at once in a
 * struct), duplicated arrays (accumulating shadows), constants, enzyme_out and
 * enzyme_dupnoneed. */
#include "check.h"

typedef struct { double dx, dy; } Pair;
extern double __enzyme_autodiff(void *, ...);
extern Pair __enzyme_autodiff2(void *, ...) __asm__("__enzyme_autodiff");
extern void __enzyme_autodiff_void(void *, ...) __asm__("__enzyme_autodiff");

double cube(double x) { return x * x * x; }
double mix(double x, double y) { return sin(x) * y + exp(y); }
double norm2(const double *x, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += x[i] * x[i];
  return sqrt(s);
}
void scale(double *out, const double *x, double a, int n) {
  for (int i = 0; i < n; i++) out[i] = a * x[i] * x[i];
}

int main(void) {
  APPROX_EQ(__enzyme_autodiff((void *)cube, 2.0), 12.0, 1e-12);
  APPROX_EQ(__enzyme_autodiff((void *)cube, enzyme_out, -1.5), 6.75, 1e-12);

  Pair g = __enzyme_autodiff2((void *)mix, 0.5, 2.0);
  APPROX_EQ(g.dx, cos(0.5) * 2.0, 1e-12);
  APPROX_EQ(g.dy, sin(0.5) + exp(2.0), 1e-12);

  double x[3] = {1, 2, 2}, dx[3] = {0, 0, 0};
  __enzyme_autodiff_void((void *)norm2, enzyme_dup, x, dx, enzyme_const, 3);
  for (int i = 0; i < 3; i++) APPROX_EQ(dx[i], x[i] / 3.0, 1e-12);
  __enzyme_autodiff_void((void *)norm2, enzyme_dup, x, dx, enzyme_const, 3);  /* accumulates */
  for (int i = 0; i < 3; i++) APPROX_EQ(dx[i], 2 * x[i] / 3.0, 1e-12);

  double out[3], dout[3] = {1, 1, 1}, dx2[3] = {0, 0, 0};
  double da = __enzyme_autodiff((void *)scale, enzyme_dupnoneed, out, dout, enzyme_dup, x, dx2,
                                enzyme_out, 3.0, enzyme_const, 3);
  for (int i = 0; i < 3; i++) APPROX_EQ(dx2[i], 6.0 * x[i], 1e-12);
  APPROX_EQ(da, 1.0 + 4.0 + 4.0, 1e-12);
  for (int i = 0; i < 3; i++) APPROX_EQ(dout[i], 0.0, 0.0); /* the seed is consumed */
  return failures;
}
