"""The data-pointer reader of the call layer is picked once per process: every module
that converts arrays reads it through ``enzyme_py._call.run``, so none keeps the picking
function (which probes NumPy's layout on every call)."""

from __future__ import annotations

import numpy as np

from enzyme_py._call import pointers, request, run


def test_the_reader_is_picked_once_and_shared() -> None:
    x = np.arange(4.0)
    assert run.address_of(x) == x.__array_interface__["data"][0]
    assert run.address_of.__name__ != "address_of"  # the picked reader, not the picker
    for module in (pointers, request):
        assert not hasattr(module, "address_of"), f"{module.__name__} holds its own address_of"
    view = np.zeros((3, 4), dtype=np.float32)[1:, ::2]
    assert run.address_of(view) == view.__array_interface__["data"][0]
