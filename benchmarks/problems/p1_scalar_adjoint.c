/* Hand-written adjoint of P1: d/dx [sin(x) x + exp(x)] = cos(x) x + sin(x) + exp(x). */
#include "p1_scalar.c"

double p1_scalar_grad(double x) {
    return cos(x) * x + sin(x) + exp(x);
}
