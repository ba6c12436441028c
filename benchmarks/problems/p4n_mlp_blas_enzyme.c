/* Enzyme driver for P4N (gradient with respect to W1 and W2). Not built by the enzyme_opt
 * tool (its link step has no BLAS with the plain CBLAS names), kept so that every problem
 * has its three C files. */
#include <string.h>
#include "p4n_mlp_blas.c"

extern int enzyme_dup, enzyme_const;
extern void __enzyme_autodiff(void *, ...);

void p4n_mlp_blas_grad(const double *W1, const double *W2, const double *X, const double *y,
                       long batch, long nin, long nh, double *dW1, double *dW2) {
    memset(dW1, 0, (size_t)(nin * nh) * sizeof(double));
    memset(dW2, 0, (size_t)nh * sizeof(double));
    __enzyme_autodiff((void *)p4n_mlp_blas, enzyme_dup, W1, dW1, enzyme_dup, W2, dW2,
                      enzyme_const, X, enzyme_const, y, enzyme_const, batch,
                      enzyme_const, nin, enzyme_const, nh);
}
