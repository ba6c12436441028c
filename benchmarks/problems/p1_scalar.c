/* P1: f(x) = sin(x) * x + exp(x), a scalar function: what it measures is per-call latency.
 * The arithmetic here is the reference that the Numba, JAX and PyTorch forms repeat. */
#include <math.h>

double p1_scalar(double x) {
    return sin(x) * x + exp(x);
}
