/* Hand-written adjoint of P2, one fused pass that overwrites dx:
 *   dx[i] = 200 t[i-1] - 400 t[i] x[i] - 2 u[i],  t[i] = x[i+1] - x[i]^2,  u[i] = 1 - x[i],
 * where terms with an index outside 0..n-2 are absent. */
#include "p2_rosenbrock.c"

void p2_rosenbrock_grad(const double *x, long n, double *dx) {
    if (n <= 0) return;
    if (n == 1) { dx[0] = 0.0; return; }
    double t0 = x[1] - x[0] * x[0];
    dx[0] = -400.0 * t0 * x[0] - 2.0 * (1.0 - x[0]);
    for (long i = 1; i < n - 1; i++) {
        double tp = x[i] - x[i - 1] * x[i - 1];
        double t = x[i + 1] - x[i] * x[i];
        dx[i] = 200.0 * tp - 400.0 * t * x[i] - 2.0 * (1.0 - x[i]);
    }
    double tl = x[n - 1] - x[n - 2] * x[n - 2];
    dx[n - 1] = 200.0 * tl;
}
