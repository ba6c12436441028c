/* Hand-written adjoint of P5: the states are stored on the way forward (3 (steps + 1) doubles),
 * then each step's four stages are recomputed and back-propagated, newest step first.
 * For the Lorenz right-hand side f, J(x, y, z)^T v is
 *   (-sigma v1 + (rho - z) v2 + y v3,  sigma v1 - v2 + x v3,  -x v2 - beta v3).
 * If the state buffer cannot be allocated, dx0 is filled with NaN. */
#include <stdlib.h>
#include "p5_lorenz.c"

static void p5_jt(double x, double y, double z, double v1, double v2, double v3,
                  double *gx, double *gy, double *gz) {
    const double sigma = 10.0, rho = 28.0, beta = 8.0 / 3.0;
    *gx = -sigma * v1 + (rho - z) * v2 + y * v3;
    *gy = sigma * v1 - v2 + x * v3;
    *gz = -x * v2 - beta * v3;
}

void p5_lorenz_grad(const double *x0, long steps, double *dx0) {
    const double sigma = 10.0, rho = 28.0, beta = 8.0 / 3.0, dt = 0.01;
    double *s = malloc((size_t)(steps + 1) * 3 * sizeof(double));
    if (s == NULL) {
        dx0[0] = dx0[1] = dx0[2] = NAN;
        return;
    }
    double x = x0[0], y = x0[1], z = x0[2];
    for (long k = 0; k < steps; k++) {
        s[3 * k] = x;
        s[3 * k + 1] = y;
        s[3 * k + 2] = z;
        double k1x = sigma * (y - x);
        double k1y = x * (rho - z) - y;
        double k1z = x * y - beta * z;
        double x2 = x + 0.5 * dt * k1x;
        double y2 = y + 0.5 * dt * k1y;
        double z2 = z + 0.5 * dt * k1z;
        double k2x = sigma * (y2 - x2);
        double k2y = x2 * (rho - z2) - y2;
        double k2z = x2 * y2 - beta * z2;
        double x3 = x + 0.5 * dt * k2x;
        double y3 = y + 0.5 * dt * k2y;
        double z3 = z + 0.5 * dt * k2z;
        double k3x = sigma * (y3 - x3);
        double k3y = x3 * (rho - z3) - y3;
        double k3z = x3 * y3 - beta * z3;
        double x4 = x + dt * k3x;
        double y4 = y + dt * k3y;
        double z4 = z + dt * k3z;
        double k4x = sigma * (y4 - x4);
        double k4y = x4 * (rho - z4) - y4;
        double k4z = x4 * y4 - beta * z4;
        x = x + (dt / 6.0) * (k1x + 2.0 * k2x + 2.0 * k3x + k4x);
        y = y + (dt / 6.0) * (k1y + 2.0 * k2y + 2.0 * k3y + k4y);
        z = z + (dt / 6.0) * (k1z + 2.0 * k2z + 2.0 * k3z + k4z);
    }
    double ax = 1.0, ay = 0.0, az = 0.0;
    for (long k = steps - 1; k >= 0; k--) {
        x = s[3 * k];
        y = s[3 * k + 1];
        z = s[3 * k + 2];
        double k1x = sigma * (y - x);
        double k1y = x * (rho - z) - y;
        double k1z = x * y - beta * z;
        double x2 = x + 0.5 * dt * k1x;
        double y2 = y + 0.5 * dt * k1y;
        double z2 = z + 0.5 * dt * k1z;
        double k2x = sigma * (y2 - x2);
        double k2y = x2 * (rho - z2) - y2;
        double k2z = x2 * y2 - beta * z2;
        double x3 = x + 0.5 * dt * k2x;
        double y3 = y + 0.5 * dt * k2y;
        double z3 = z + 0.5 * dt * k2z;
        double k3x = sigma * (y3 - x3);
        double k3y = x3 * (rho - z3) - y3;
        double k3z = x3 * y3 - beta * z3;
        double x4 = x + dt * k3x;
        double y4 = y + dt * k3y;
        double z4 = z + dt * k3z;
        /* Adjoints of the stages from x_{k+1} = x_k + dt/6 (k1 + 2 k2 + 2 k3 + k4). */
        double c = dt / 6.0;
        double a1x = c * ax, a1y = c * ay, a1z = c * az;
        double a2x = 2.0 * c * ax, a2y = 2.0 * c * ay, a2z = 2.0 * c * az;
        double a3x = 2.0 * c * ax, a3y = 2.0 * c * ay, a3z = 2.0 * c * az;
        double a4x = c * ax, a4y = c * ay, a4z = c * az;
        double sx = ax, sy = ay, sz = az;
        double gx, gy, gz;
        p5_jt(x4, y4, z4, a4x, a4y, a4z, &gx, &gy, &gz); /* k4 = f(x + dt k3) */
        sx += gx; sy += gy; sz += gz;
        a3x += dt * gx; a3y += dt * gy; a3z += dt * gz;
        p5_jt(x3, y3, z3, a3x, a3y, a3z, &gx, &gy, &gz); /* k3 = f(x + dt/2 k2) */
        sx += gx; sy += gy; sz += gz;
        a2x += 0.5 * dt * gx; a2y += 0.5 * dt * gy; a2z += 0.5 * dt * gz;
        p5_jt(x2, y2, z2, a2x, a2y, a2z, &gx, &gy, &gz); /* k2 = f(x + dt/2 k1) */
        sx += gx; sy += gy; sz += gz;
        a1x += 0.5 * dt * gx; a1y += 0.5 * dt * gy; a1z += 0.5 * dt * gz;
        p5_jt(x, y, z, a1x, a1y, a1z, &gx, &gy, &gz); /* k1 = f(x) */
        ax = sx + gx;
        ay = sy + gy;
        az = sz + gz;
    }
    free(s);
    dx0[0] = ax;
    dx0[1] = ay;
    dx0[2] = az;
}
