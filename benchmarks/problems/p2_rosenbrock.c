/* P2: the Rosenbrock function, sum over i < n-1 of 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2. */
#include <math.h>

double p2_rosenbrock(const double *x, long n) {
    double f = 0.0;
    for (long i = 0; i < n - 1; i++) {
        double t = x[i + 1] - x[i] * x[i];
        double u = 1.0 - x[i];
        f += 100.0 * t * t + u * u;
    }
    return f;
}
