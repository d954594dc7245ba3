"""Helpers shared by the chapter-3 record functions (kernel side: stdlib and NumPy only)."""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np

from grader.kernel.student import Outcome


def origin(student: Any) -> dict:
    """Where the student's object comes from: its name, module, and any code that lives inside a dlcore folder."""
    info = {"name": str(getattr(student, "__name__", type(student).__name__))[:80],
            "module": str(getattr(student, "__module__", "") or "")[:200], "dlcore_code": []}
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
