"""The call layer, between the public API and compilation: :mod:`.layout` (how a
function's Python-level parameters map onto its entry point), :mod:`.request` (one
argument specification per request, which builds both the validating first call and
the fast repeated call), :mod:`.batch` (vector-mode arguments), :mod:`.run` (calling
an entry point and shaping its results), :mod:`.fast` (the per-kind cache of prepared
calls)."""
