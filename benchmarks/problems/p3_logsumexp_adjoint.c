/* Hand-written adjoint of P3: the softmax, dx[i] = exp(x[i] - m) / s. The exponentials are
 * stored in dx on the way forward and scaled once, so each is computed only once. The max
 * contributes 1 - sum(softmax) = 0 analytically and is left out. */
#include "p3_logsumexp.c"

void p3_logsumexp_grad(const double *x, long n, double *dx) {
    double m = x[0];
    for (long i = 1; i < n; i++) {
        m = x[i] > m ? x[i] : m;
    }
    double s = 0.0;
    for (long i = 0; i < n; i++) {
        double e = exp(x[i] - m);
        dx[i] = e;
        s += e;
    }
    double r = 1.0 / s;
    for (long i = 0; i < n; i++) {
        dx[i] *= r;
    }
}
