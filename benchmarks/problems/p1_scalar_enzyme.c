/* Enzyme driver for P1: the gradient of p1_scalar through __enzyme_autodiff. */
#include "p1_scalar.c"

extern double __enzyme_autodiff(void *, ...);

double p1_scalar_grad(double x) {
    return __enzyme_autodiff((void *)p1_scalar, x);
}
