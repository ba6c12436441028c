/* P4: the mean squared error of a two-layer perceptron without biases,
 *   loss = (1/batch) sum_b (sum_j tanh((X W1)[b, j]) W2[j] - y[b])^2,
 * with row-major X (batch x nin), W1 (nin x nh), W2 (nh) and y (batch).
 * Invariant: nh <= P4_MAX_HIDDEN (the caller checks it; the hidden row lives on the stack). */
#include <math.h>

#define P4_MAX_HIDDEN 128

double p4_mlp(const double *W1, const double *W2, const double *X, const double *y,
              long batch, long nin, long nh) {
    double loss = 0.0;
    for (long b = 0; b < batch; b++) {
        double h[P4_MAX_HIDDEN];
        for (long j = 0; j < nh; j++) {
            h[j] = 0.0;
        }
        for (long i = 0; i < nin; i++) {
            double xi = X[b * nin + i];
            for (long j = 0; j < nh; j++) {
                h[j] += xi * W1[i * nh + j];
            }
        }
        double out = 0.0;
        for (long j = 0; j < nh; j++) {
            out += tanh(h[j]) * W2[j];
        }
        double r = out - y[b];
        loss += r * r;
    }
    return loss / (double)batch;
}
