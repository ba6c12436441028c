/* Hand-written adjoint of P4N with respect to W1 and W2 (overwrites dW1, dW2), in matrix
 * products: A = tanh(X W1), g = 2 (A W2 - y) / batch, dW2 = A^T g,
 * dZ = (g W2^T) * (1 - A^2), dW1 = X^T dZ. */
#include "p4n_mlp_blas.c"

void p4n_mlp_blas_grad(const double *W1, const double *W2, const double *X, const double *y,
                       long batch, long nin, long nh, double *dW1, double *dW2) {
    double *a = malloc(sizeof(double) * (size_t)(batch * nh));
    double *g = malloc(sizeof(double) * (size_t)batch);
    cblas_dgemm(P4N_ROW_MAJOR, P4N_NO_TRANS, P4N_NO_TRANS, (int)batch, (int)nh, (int)nin, 1.0,
                X, (int)nin, W1, (int)nh, 0.0, a, (int)nh);
    for (long k = 0; k < batch * nh; k++) {
        a[k] = tanh(a[k]);
    }
    cblas_dgemv(P4N_ROW_MAJOR, P4N_NO_TRANS, (int)batch, (int)nh, 1.0, a, (int)nh, W2, 1, 0.0,
                g, 1);
    for (long b = 0; b < batch; b++) {
        g[b] = 2.0 * (g[b] - y[b]) / (double)batch;
    }
    cblas_dgemv(P4N_ROW_MAJOR, P4N_TRANS, (int)batch, (int)nh, 1.0, a, (int)nh, g, 1, 0.0,
                dW2, 1);
    for (long b = 0; b < batch; b++) {
        for (long j = 0; j < nh; j++) {
            double aj = a[b * nh + j];
            a[b * nh + j] = g[b] * W2[j] * (1.0 - aj * aj);
        }
    }
    cblas_dgemm(P4N_ROW_MAJOR, P4N_TRANS, P4N_NO_TRANS, (int)nin, (int)nh, (int)batch, 1.0, X,
                (int)nin, a, (int)nh, 0.0, dW1, (int)nh);
    free(a);
    free(g);
}
