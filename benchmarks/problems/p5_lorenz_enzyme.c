/* Enzyme driver for P5: gradient of the final x with respect to x0. Enzyme accumulates into the
 * shadow, so it is zeroed first. */
#include "p5_lorenz.c"

extern int enzyme_dup, enzyme_const;
extern void __enzyme_autodiff(void *, ...);

void p5_lorenz_grad(const double *x0, long steps, double *dx0) {
    dx0[0] = 0.0;
    dx0[1] = 0.0;
    dx0[2] = 0.0;
    __enzyme_autodiff((void *)p5_lorenz, enzyme_dup, x0, dx0, enzyme_const, steps);
}
