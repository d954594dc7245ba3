"""Helpers shared by the record functions of chapters 3 and 4 (kernel side: stdlib and NumPy only)."""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

import numpy as np

from grader.kernel.student import PROTOCOL_BASES, plain, provenance


def _in_dlcore(filename: str) -> bool:
    return "dlcore" in os.path.abspath(filename).split(os.sep)[:-1]


def origin(student: Any) -> dict:
    """Where the student's object comes from: :func:`grader.kernel.student.provenance` (name, module, dlcore
    base classes), the code that lives inside a dlcore folder, and the reference calls a :class:`Trace` sees."""
    codes = []
    if inspect.isclass(student):
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


class Trace:
    """Within ``with``: note calls into dlcore code whose function or class is one of ``names`` (the exercise's
    reference, a name or a list of names), so that a solution handing the work to dlcore is seen in the kernel
    too (re-entrant: restores the old hook)."""

    def __init__(self, names: str | list | tuple | None, hits: list) -> None:
        self.names, self.hits, self.old = {names} if isinstance(names, str) else set(names or ()), hits, None

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        qual = getattr(code, "co_qualname", code.co_name)
        if (qual.split(".")[0] in self.names or code.co_name in self.names) and qual not in self.hits \
                and _in_dlcore(code.co_filename):
            self.hits.append(qual)

    def __enter__(self) -> Trace:
        if self.names:
            self.old = sys.getprofile()
            sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.names:
            sys.setprofile(self.old)
