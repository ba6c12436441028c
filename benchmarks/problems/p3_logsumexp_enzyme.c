/* Enzyme driver for P3. Enzyme accumulates into the shadow, so it is zeroed first. */
#include <string.h>
#include "p3_logsumexp.c"

extern int enzyme_dup, enzyme_const;
extern void __enzyme_autodiff(void *, ...);

void p3_logsumexp_grad(const double *x, long n, double *dx) {
    memset(dx, 0, (size_t)n * sizeof(double));
    __enzyme_autodiff((void *)p3_logsumexp, enzyme_dup, x, dx, enzyme_const, n);
}
