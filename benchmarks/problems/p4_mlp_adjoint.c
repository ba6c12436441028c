/* Hand-written adjoint of P4 with respect to W1 and W2 (overwrites dW1, dW2). Each row is
 * recomputed and back-propagated at once, so no activations are stored across rows:
 *   dout = 2 r / batch,  dW2 += dout a,  dz = dout W2 (1 - a^2),  dW1 += x^T dz,  a = tanh(h). */
#include "p4_mlp.c"

void p4_mlp_grad(const double *W1, const double *W2, const double *X, const double *y,
                 long batch, long nin, long nh, double *dW1, double *dW2) {
    for (long k = 0; k < nin * nh; k++) {
        dW1[k] = 0.0;
    }
    for (long j = 0; j < nh; j++) {
        dW2[j] = 0.0;
    }
    for (long b = 0; b < batch; b++) {
        double a[P4_MAX_HIDDEN];
        double dz[P4_MAX_HIDDEN];
        for (long j = 0; j < nh; j++) {
            a[j] = 0.0;
        }
        for (long i = 0; i < nin; i++) {
            double xi = X[b * nin + i];
            for (long j = 0; j < nh; j++) {
                a[j] += xi * W1[i * nh + j];
            }
        }
        double out = 0.0;
        for (long j = 0; j < nh; j++) {
            a[j] = tanh(a[j]);
            out += a[j] * W2[j];
        }
        double dout = 2.0 * (out - y[b]) / (double)batch;
        for (long j = 0; j < nh; j++) {
            dW2[j] += dout * a[j];
            dz[j] = dout * W2[j] * (1.0 - a[j] * a[j]);
        }
        for (long i = 0; i < nin; i++) {
            double xi = X[b * nin + i];
            for (long j = 0; j < nh; j++) {
                dW1[i * nh + j] += xi * dz[j];
            }
        }
    }
}
