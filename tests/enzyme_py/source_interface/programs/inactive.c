/* Inactive functions and globals: __enzyme_inactivefn registration, the
 * enzyme_inactive attribute of Enzyme's clang plugin on a definition, on an external
 * declaration and on a global. */
#include "check.h"

extern double __enzyme_autodiff(void *, ...);

double logged(double x) { return 2 * x; }          /* registered inactive below */
void *__enzyme_inactivefn_logged = (void *)logged;

__attribute__((enzyme_inactive)) double noise(double x) { return 3 * x; }

__attribute__((enzyme_inactive)) extern double tanh(double x);  /* from libm */

__attribute__((enzyme_inactive)) double weight = 4.0;

double f(double x) { return x * x + logged(x) + noise(x) + tanh(x) + weight * x; }

int main(void) {
  /* d/dx only of x*x + weight*x, the rest is inactive; weight's own derivative too */
  APPROX_EQ(__enzyme_autodiff((void *)f, 1.5), 3.0 + 4.0, 1e-12);
  return failures;
}
