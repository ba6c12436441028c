/* Enzyme driver for P4: gradient with respect to W1 and W2; X, y and the sizes are constant.
 * Enzyme accumulates into the shadows, so they are zeroed first. */
#include <string.h>
#include "p4_mlp.c"

extern int enzyme_dup, enzyme_const;
extern void __enzyme_autodiff(void *, ...);

void p4_mlp_grad(const double *W1, const double *W2, const double *X, const double *y,
                 long batch, long nin, long nh, double *dW1, double *dW2) {
    memset(dW1, 0, (size_t)(nin * nh) * sizeof(double));
    memset(dW2, 0, (size_t)nh * sizeof(double));
    __enzyme_autodiff((void *)p4_mlp, enzyme_dup, W1, dW1, enzyme_dup, W2, dW2,
                      enzyme_const, X, enzyme_const, y, enzyme_const, batch,
                      enzyme_const, nin, enzyme_const, nh);
}
