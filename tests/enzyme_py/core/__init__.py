"""Public-API tests of enzyme_py (autodiff, gradient, modules, errors) against the real Enzyme."""
