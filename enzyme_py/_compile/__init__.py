"""Compilation, split by stage: :mod:`.plan` (what to build), :mod:`.pipeline` (Enzyme,
the C-ABI entry, optimisation, object code), :mod:`.modes` (Hessian-vector products and
split mode), :mod:`.loader` (object code into the JIT), :mod:`.memcache` and
:mod:`.diskcache` (compiled code kept in memory and on disk), :mod:`.worker` and
:mod:`.client` (compiling in an isolation worker), :mod:`.service` (where a request is
served), :mod:`.clang` (C source to bitcode)."""
