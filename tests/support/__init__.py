"""Test support shared by every test folder (one of each; import from here, never copy).

* :mod:`tests.support.child`: run Python code in a fresh interpreter (crashes of native code
  fail one test, not the suite; concurrency with real processes);
* :mod:`tests.support.fd`: finite differences to check derivatives against;
* :mod:`tests.support.http`: the HTTP server on 127.0.0.1 for download tests (built on
  pytest-httpserver's ``httpserver`` fixture);
* :mod:`tests.support.ir`: LLVM IR samples used by several folders.
"""
