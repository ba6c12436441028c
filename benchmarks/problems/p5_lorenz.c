/* P5: `steps` classical RK4 steps of the Lorenz system (sigma 10, rho 28, beta 8/3, dt 0.01)
 * from x0[0..2]; returns the final x. Long chains of small sequential operations. */
#include <math.h>

double p5_lorenz(const double *x0, long steps) {
    const double sigma = 10.0, rho = 28.0, beta = 8.0 / 3.0, dt = 0.01;
    double x = x0[0], y = x0[1], z = x0[2];
    for (long k = 0; k < steps; k++) {
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
    return x;
}
