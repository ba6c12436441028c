/* Split reverse mode: __enzyme_augmentfwd records a tape (allocated by the caller with
 * enzyme_allocated), __enzyme_reverse consumes it; the input is overwritten in between. */
#include "check.h"

extern void *__enzyme_augmentfwd(void *, ...);
extern void __enzyme_reverse(void *, ...);
#define TAPE 256

void step(double *x) {        /* x <- (x0 + x1^2, -sin(x1)) */
  x[0] += x[1] * x[1];
  x[1] = -sin(x[1]);
}

int main(void) {
  double x0 = 1.2, x1 = 0.7;
  double x[2] = {x0, x1}, xb[2] = {0.5, 2.0};
  char tape[TAPE];
  __enzyme_augmentfwd((void *)step, enzyme_dup, x, xb, enzyme_allocated, TAPE, enzyme_tape, tape);
  APPROX_EQ(x[0], x0 + x1 * x1, 1e-12);
  APPROX_EQ(x[1], -sin(x1), 1e-12);
  __enzyme_reverse((void *)step, enzyme_dup, x, xb, enzyme_allocated, TAPE, enzyme_tape, tape);
  APPROX_EQ(xb[0], 0.5, 1e-12);
  APPROX_EQ(xb[1], 0.5 * 2 * x1 + 2.0 * (-cos(x1)), 1e-12);
  return failures;
}
