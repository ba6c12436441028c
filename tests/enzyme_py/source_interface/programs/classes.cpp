// C++: a class with methods, a template, a virtual call, std::vector and a lambda,
// differentiated through __enzyme_autodiff / __enzyme_fwddiff templates; a global
// with a constructor (static initialisation) and an exception caught inside.
#include "check.h"
#include <cmath>
#include <stdexcept>
#include <vector>

template <typename Ret, typename... Args> Ret __enzyme_autodiff(void *, Args...);
template <typename Ret, typename... Args> Ret __enzyme_fwddiff(void *, Args...);

namespace phys {
class Spring {
 public:
  explicit Spring(double k) : k_(k) {}
  double energy(double x) const { return 0.5 * k_ * x * x; }
 private:
  double k_;
};

template <typename T> T poly(T x) { return x * x * x - T(2) * x; }

struct Shape { virtual double area(double r) const = 0; virtual ~Shape() {} };
struct Circle : Shape { double area(double r) const override { return M_PI * r * r; } };
}  // namespace phys
template double phys::poly<double>(double);  // instantiated: kept for Python callers

// built by a static constructor; inactive: Enzyme would otherwise differentiate into a
// shadow vector of its own, which nothing constructs
__attribute__((enzyme_inactive)) static std::vector<double> weights = {1.0, 2.0, 3.0};

double spring_energy(double x) { return phys::Spring(4.0).energy(x); }
double poly_d(double x) { return phys::poly(x); }
double circle(double r) {
  phys::Circle c;
  const phys::Shape &s = c;
  return s.area(r);
}
double weighted(const double *x) {
  std::vector<double> v(x, x + 3);
  double s = 0;
  auto add = [&](double a, double w) { s += w * a * a; };
  for (size_t i = 0; i < v.size(); i++) add(v[i], weights[i]);
  return s;
}
int safe_parse(int k) {
  try {
    if (k < 0) throw std::invalid_argument("negative");
    return k;
  } catch (const std::exception &) {
    return -1;
  }
}

int main() {
  APPROX_EQ(__enzyme_autodiff<double>((void *)spring_energy, 1.5), 4.0 * 1.5, 1e-12);
  APPROX_EQ(__enzyme_autodiff<double>((void *)poly_d, 2.0), 3 * 4.0 - 2.0, 1e-12);
  APPROX_EQ(__enzyme_fwddiff<double>((void *)circle, 2.0, 1.0), 2 * M_PI * 2.0, 1e-12);
  double x[3] = {1, 2, 3}, dx[3] = {0, 0, 0};
  __enzyme_autodiff<void>((void *)weighted, enzyme_dup, x, dx);
  for (int i = 0; i < 3; i++) APPROX_EQ(dx[i], 2 * weights[i] * x[i], 1e-12);
  APPROX_EQ(safe_parse(-3), -1, 0);
  APPROX_EQ(safe_parse(3), 3, 0);
  return failures;
}
