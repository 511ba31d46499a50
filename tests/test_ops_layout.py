"""The op layer's shape: the public API of bdb_ext.ops, at most four files, and the emulated backend's functions
called exactly like the public ones (tests and other helpers' code rely on it)."""

from __future__ import annotations

import inspect
from pathlib import Path

import bdb_ext.ops
from emulated_library import OP_NAMES, bind_namespace


def test_public_api():
    assert set(bdb_ext.ops.__all__) == {*OP_NAMES, "RectLike", "as_rect_tensor"}
    assert not hasattr(bdb_ext.ops, "OpLibrary")


def test_at_most_four_files():
    package = Path(bdb_ext.ops.__file__).parent
    assert sorted(p.name for p in package.glob("*.py")) == ["__init__.py", "_common.py", "drop.py", "mining.py"]


def test_a_bound_namespace_has_the_public_signatures():
    # Binding the public namespace itself needs no emulated build and checks the same partials.
    bound = bind_namespace("bdb_ext")
    for name in OP_NAMES:
        public = inspect.signature(getattr(bdb_ext.ops, name))
        assert list(inspect.signature(getattr(bound, name)).parameters.values()) == list(public.parameters.values())
