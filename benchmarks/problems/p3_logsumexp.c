/* P3: log(sum(exp(x))), computed stably: m = max(x), then m + log(sum(exp(x - m))). */
#include <math.h>

double p3_logsumexp(const double *x, long n) {
    double m = x[0];
    for (long i = 1; i < n; i++) {
        m = x[i] > m ? x[i] : m;
    }
    double s = 0.0;
    for (long i = 0; i < n; i++) {
        s += exp(x[i] - m);
    }
    return m + log(s);
}
