/* Checks for the programs of tests/enzyme_py/source_interface: like Enzyme's
 * APPROX_EQ, but a failed check is counted (main() returns the count) instead of
 * aborting, so that every check of a program reports. */
#ifndef ENZPY_CHECK_H
#define ENZPY_CHECK_H
#include <stdio.h>
#include <math.h>

static int failures = 0;

#define APPROX_EQ(LHS, RHS, TOL)                                                         \
  do {                                                                                   \
    double lhs_ = (double)(LHS), rhs_ = (double)(RHS);                                   \
    if (!(fabs(lhs_ - rhs_) <= (TOL))) {                                                 \
      fprintf(stderr, "%s:%d: %s = %.17g, expected %s = %.17g\n", __FILE__, __LINE__,    \
              #LHS, lhs_, #RHS, rhs_);                                                   \
      failures++;                                                                        \
    }                                                                                    \
  } while (0)

#ifdef __cplusplus
extern "C" {
#endif
extern int enzyme_dup, enzyme_dupnoneed, enzyme_const, enzyme_out, enzyme_width,
    enzyme_tape, enzyme_allocated, enzyme_vector, enzyme_scalar, enzyme_dupv;
#ifdef __cplusplus
}
#endif
#endif
