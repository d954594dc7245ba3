"""Helpers shared by the record functions of chapters 3–6 (kernel side: stdlib and NumPy only)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from grader.kernel.student import PROTOCOL_BASES, plain, provenance


def _in_dlcore(filename: str) -> bool:
    return "dlcore" in os.path.abspath(filename).split(os.sep)[:-1]


def origin(student: Any) -> dict:
    """Where the student's object comes from: :func:`grader.kernel.student.provenance` (name, module, dlcore
    base classes), the code that lives inside a dlcore folder, and the reference calls a :func:`trace` sees."""
    codes = []
    if isinstance(student, type):
        for klass in student.__mro__:
            if klass is object or f"{klass.__module__}.{klass.__qualname__}" in PROTOCOL_BASES:
                continue
            for value in vars(klass).values():
                fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
                if hasattr(fn, "__code__"):
                    codes.append(fn.__code__)
    elif hasattr(student, "__code__"):
        codes.append(student.__code__)
    return {**provenance(student), "calls_reference": [],
            "dlcore_code": [f"{code.co_name} (from {'/'.join(code.co_filename.split(os.sep)[-2:])})"
                            for code in codes if _in_dlcore(code.co_filename)]}


def array_or_text(v: Any) -> Any:
    """A NumPy copy of an array-like result (:func:`grader.kernel.student.plain` first), or a short description
    of what it is instead."""
    v = plain(v)
    if v is None or isinstance(v, np.ndarray):
        return v
    try:
        a = np.array(v)
    except Exception:
        return f"<a {type(v).__name__}>"
    return a if a.dtype.kind in "biuf" else f"<a {type(v).__name__}>"


@contextlib.contextmanager
def trace(names: str | list | tuple | None, hits: list) -> Iterator[None]:
    """Within ``with``: note in ``hits`` the calls into dlcore code whose function or class is one of ``names`` (the
    exercise's reference, a name or a list of names), so that a solution handing the work to dlcore is seen in the
    kernel too (re-entrant: restores the profile hook it found)."""
    names = {names} if isinstance(names, str) else set(names or ())

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        qual = getattr(code, "co_qualname", code.co_name)
        if (qual.split(".")[0] in names or code.co_name in names) and qual not in hits and _in_dlcore(code.co_filename):
            hits.append(qual)

    old = sys.getprofile()
    if names:
        sys.setprofile(hook)
    try:
        yield
    finally:
        if names:
            sys.setprofile(old)

def plain_data(v: Any, depth: int = 0) -> Any:
    """Plain-data copy of a student's value: numeric arrays, numbers, strings, None, and tuples, lists and dicts of
    them (NumPy scalars as Python numbers); anything else becomes its type name."""
    if depth > 4:
        return "<nested too deeply>"
    if isinstance(v, tuple):
        return tuple(plain_data(x, depth + 1) for x in v)
    if isinstance(v, list):
        return [plain_data(x, depth + 1) for x in v]
    if isinstance(v, dict):
        return {str(k): plain_data(x, depth + 1) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    try:
        a = np.asarray(v)
    except Exception:
        return f"<{type(v).__name__}>"
    return a.copy() if a.dtype.kind in "biuf" else f"<{type(v).__name__}>"


@contextlib.contextmanager
def swapped(namespace: Any, table: dict, names: Any, *, own_only: str | None = None) -> Iterator[list]:
    """Within ``with``: those of ``names`` that ``namespace`` (a student function's ``__globals__``) binds point
    to ``table[name]``, the grader's correct version of an earlier exercise; ``own_only``: only names bound to
    an object of that module (the notebook's own classes, not a library's). ``with`` gives the names replaced."""
    if not isinstance(namespace, dict):
        namespace = {}
    saved = {n: namespace[n] for n in names if n in table and n in namespace
             and (own_only is None or getattr(namespace[n], "__module__", None) == own_only)}
    namespace.update({n: table[n] for n in saved})
    try:
        yield list(saved)
    finally:
        namespace.update(saved)
