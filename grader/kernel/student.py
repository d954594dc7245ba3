"""Calling student code from a record function: exceptions and NumPy warnings become data.

A warning raised inside the student's code (overflow in ``exp``, division by zero, …) is part of
the result: the exercise text forbids it, so the judge reports it as a failure with its reason.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Base classes a student's class may have (the protocol), everything else from dlcore is delegation.
PROTOCOL_BASES = {"dlcore.nn.base.Layer", "dlcore.nn.base.Loss"}


@dataclass
class Outcome:
    """What one call of student code gave: its value, or the error text; the warnings it raised."""

    value: Any = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_record(self, encode: Callable[[Any], Any] = lambda v: v) -> dict:
        return {"value": encode(self.value), "error": self.error, "warnings": list(self.warnings)}


def error_text(exc: BaseException) -> str:
    """``Type: message``, short, with a hint for the skeleton's NotImplementedError."""
    try:
        detail = str(exc).strip()
    except Exception:
        detail = "(the exception's message could not be read)"
    text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if isinstance(exc, NotImplementedError):
        text += " (this exercise is not implemented yet)"
    return text if len(text) < 600 else text[:600] + " …"


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Outcome:
    """Run ``fn(*args, **kwargs)``; never raises (except KeyboardInterrupt/SystemExit), never prints."""
    out = Outcome()
    fp_errors = np.errstate(over="warn", divide="warn", invalid="warn", under="ignore")
    with warnings.catch_warnings(record=True) as caught, fp_errors, \
            contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        try:
            out.value = fn(*args, **kwargs)
        except Exception as exc:  # the student's bug is a result, not a crash of the check
            out.error = error_text(exc)
    out.warnings = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))[:5]
    return out


def plain(v: Any) -> Any:
    """NumPy form of a student's result: arrays and scalars as NumPy, tuples/lists/dicts element-wise."""
    if isinstance(v, tuple):
        return tuple(plain(x) for x in v)
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, np.ndarray):
        return v.copy()
    if hasattr(v, "__array_namespace__"):
        try:
            return np.from_dlpack(v)
        except Exception:
            return v
    return v


def provenance(obj: Any) -> dict:
    """Where the student's object comes from (plain data): a name defined in dlcore is delegation."""
    name = getattr(obj, "__name__", type(obj).__name__)
    module = str(getattr(obj, "__module__", "") or "")
    bases = []
    if isinstance(obj, type):
        bases = [f"{k.__module__}.{k.__qualname__}" for k in obj.__mro__[1:]
                 if str(k.__module__).startswith("dlcore") and f"{k.__module__}.{k.__qualname__}" not in PROTOCOL_BASES]
    return {"name": str(name)[:80], "module": module[:200], "dlcore_bases": bases}
