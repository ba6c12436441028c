/* Vector (ForwardModeVector: enzyme_width) forward mode and batched primals
 * (BatchMode: __enzyme_batch with enzyme_vector). */
#include "check.h"

typedef struct { double d0, d1; } Two;
typedef struct { double v0, v1, v2, v3; } Four;
extern Two __enzyme_fwddiff(double (*)(double, double), ...);
extern Four __enzyme_batch(void *, ...);

double fun(double x, double y) { return x * y + 1.0 / x; }
double square(double x) { return x * x; }

int main(void) {
  for (int i = 1; i < 5; i++) {
    double x = i, y = i * 0.5;
    /* two tangent directions at once: d/dx and d/dy */
    Two d = __enzyme_fwddiff(fun, enzyme_width, 2, x, 1.0, 0.0, y, 0.0, 1.0);
    APPROX_EQ(d.d0, y - 1.0 / (x * x), 1e-12);
    APPROX_EQ(d.d1, x, 1e-12);
  }
  Four r = __enzyme_batch((void *)square, enzyme_width, 4, enzyme_vector, 1.0, 2.0, 3.0, 4.0);
  APPROX_EQ(r.v0, 1.0, 0.0);
  APPROX_EQ(r.v1, 4.0, 0.0);
  APPROX_EQ(r.v2, 9.0, 0.0);
  APPROX_EQ(r.v3, 16.0, 0.0);
  return failures;
}
