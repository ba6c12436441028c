/* Custom rules registered with globals, as Enzyme's clang plugin reads them: a forward
 * derivative (__enzyme_register_derivative_*: each argument and its tangent in, the
 * primal and its tangent out) and an augmented forward + reverse pair (__enzyme_register_gradient_*,
 * the pointer convention: the augmented pass gets each pointer and its shadow and
 * returns the tape, the reverse pass gets them and the tape).  The rules deliberately
 * differ from the true derivative (x3), so a test can tell they were used. */
#include "check.h"

extern double __enzyme_autodiff(void *, ...);
extern double __enzyme_fwddiff(void *, ...);

__attribute__((noinline)) double mysq(double x) { return x * x; }
typedef struct { double primal, tangent; } Dual;
Dual mysq_fwd(double x, double dx) {
  Dual d = {x * x, 3 * 2 * x * dx};
  return d;
}
void *__enzyme_register_derivative_mysq[2] = {(void *)mysq, (void *)mysq_fwd};

static int augmented = 0, reversed = 0;
__attribute__((noinline)) void cube_(const double *src, double *dest) { *dest = *src * *src * *src; }
void *cube_aug(const double *src, const double *d_src, double *dest, double *d_dest) {
  augmented++;
  *dest = *src * *src * *src;
  return (void *)0;
}
void cube_rev(const double *src, double *d_src, const double *dest, double *d_dest, void *tape) {
  reversed++;
  *d_src += 3 * 3 * *src * *src * *d_dest;
  *d_dest = 0;
}
void *__enzyme_register_gradient_cube[3] = {(void *)cube_, (void *)cube_aug, (void *)cube_rev};

double use_sq(double x) { return mysq(x) + x; }
double use_cube(double x) {
  double y;
  cube_(&x, &y);
  return 2 * y;
}

int main(void) {
  APPROX_EQ(__enzyme_fwddiff((void *)use_sq, 2.0, 1.0), 3 * 4.0 + 1.0, 1e-12);
  APPROX_EQ(__enzyme_autodiff((void *)use_cube, 2.0), 2 * 3 * 3 * 4.0, 1e-12);
  APPROX_EQ(augmented, 1, 0);
  APPROX_EQ(reversed, 1, 0);
  return failures;
}
