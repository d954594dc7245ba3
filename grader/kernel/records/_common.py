"""Helpers shared by the chapter-3 record functions (kernel side: stdlib and NumPy only)."""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

import numpy as np

from grader.kernel.student import Outcome


def origin(student: Any) -> dict:
    """Where the student's object comes from: its name, module, and any code that lives inside a dlcore folder."""
    info = {"name": str(getattr(student, "__name__", type(student).__name__))[:80],
            "module": str(getattr(student, "__module__", "") or "")[:200], "dlcore_code": [], "calls_reference": []}
    codes = []
    if inspect.isclass(student):
        for klass in student.__mro__:
            if klass is object or f"{klass.__module__}.{klass.__qualname__}" in (
                    "dlcore.nn.base.Layer", "dlcore.nn.base.Loss"):
                continue
            if str(klass.__module__).startswith("dlcore") and klass is not student:
                info["dlcore_code"].append(f"base class {klass.__module__}.{klass.__qualname__}")
            for value in vars(klass).values():
                fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
                if hasattr(fn, "__code__"):
                    codes.append(fn.__code__)
    elif hasattr(student, "__code__"):
        codes.append(student.__code__)
    for code in codes:
        parts = os.path.abspath(code.co_filename).split(os.sep)
        if "dlcore" in parts[:-1]:
            info["dlcore_code"].append(f"{code.co_name} (from {code.co_filename.rsplit(os.sep, 2)[-2]}/"
                                       f"{os.path.basename(code.co_filename)})")
    return info


def array_or_text(v: Any) -> Any:
    """A NumPy copy of an array-like result, or a short description of what it is instead."""
    if v is None:
        return None
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, (np.generic, int, float)) and not isinstance(v, bool):
        return np.asarray(v)
    try:
        a = np.asarray(v)
    except Exception:
        return f"<a {type(v).__name__}>"
    if a.dtype.kind not in "biuf":
        return f"<a {type(v).__name__}>"
    return a.copy()


def outcome(out: Outcome, value: Any = None) -> dict:
    """The plain-data part of an Outcome (the value is given separately, already converted)."""
    return {"value": value, "error": out.error, "warnings": list(out.warnings)}


class Trace:
    """Within ``with``: note calls into dlcore code whose function or class is one of ``names`` (the exercise's
    reference), so that a solution handing the work to dlcore is seen in the kernel too (restores the old hook)."""

    def __init__(self, names: list | tuple | None, hits: list) -> None:
        self.names, self.hits, self.old = set(names or ()), hits, None

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        qual = getattr(code, "co_qualname", code.co_name)
        if (qual.split(".")[0] in self.names or code.co_name in self.names) and qual not in self.hits \
                and "dlcore" in os.path.abspath(code.co_filename).split(os.sep)[:-1]:
            self.hits.append(qual)

    def __enter__(self) -> Trace:
        if self.names:
            self.old = sys.getprofile()
            sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.names:
            sys.setprofile(self.old)
