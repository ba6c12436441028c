/* Enzyme driver for P2. Enzyme accumulates into the shadow, so it is zeroed first. */
#include <string.h>
#include "p2_rosenbrock.c"

extern int enzyme_dup, enzyme_const;
extern void __enzyme_autodiff(void *, ...);

void p2_rosenbrock_grad(const double *x, long n, double *dx) {
    memset(dx, 0, (size_t)n * sizeof(double));
    __enzyme_autodiff((void *)p2_rosenbrock, enzyme_dup, x, dx, enzyme_const, n);
}
