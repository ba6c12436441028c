/* P4N: P4's loss written as matrix products (the NumPy form, tanh(X W1) W2):
 *   H = tanh(X W1) (batch x nh, cblas_dgemm), out = H W2 (cblas_dgemv),
 *   loss = (1/batch) sum_b (out[b] - y[b])^2,
 * with row-major X (batch x nin), W1 (nin x nh), W2 (nh) and y (batch). The CBLAS calls
 * are the standard ones (32-bit int sizes); enzyme_py resolves them to its BLAS, the hand
 * build is linked against the same library. */
#include <math.h>
#include <stdlib.h>

void cblas_dgemm(int layout, int transa, int transb, int m, int n, int k, double alpha,
                 const double *a, int lda, const double *b, int ldb, double beta, double *c,
                 int ldc);
void cblas_dgemv(int layout, int trans, int m, int n, double alpha, const double *a, int lda,
                 const double *x, int incx, double beta, double *y, int incy);

enum { P4N_ROW_MAJOR = 101, P4N_NO_TRANS = 111, P4N_TRANS = 112 };

double p4n_mlp_blas(const double *W1, const double *W2, const double *X, const double *y,
                    long batch, long nin, long nh) {
    double *h = malloc(sizeof(double) * (size_t)(batch * nh));
    double *out = malloc(sizeof(double) * (size_t)batch);
    cblas_dgemm(P4N_ROW_MAJOR, P4N_NO_TRANS, P4N_NO_TRANS, (int)batch, (int)nh, (int)nin, 1.0,
                X, (int)nin, W1, (int)nh, 0.0, h, (int)nh);
    for (long k = 0; k < batch * nh; k++) {
        h[k] = tanh(h[k]);
    }
    cblas_dgemv(P4N_ROW_MAJOR, P4N_NO_TRANS, (int)batch, (int)nh, 1.0, h, (int)nh, W2, 1, 0.0,
                out, 1);
    double loss = 0.0;
    for (long b = 0; b < batch; b++) {
        double r = out[b] - y[b];
        loss += r * r;
    }
    free(h);
    free(out);
    return loss / (double)batch;
}
