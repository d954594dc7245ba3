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
    detail = str(exc).strip()
    text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if isinstance(exc, NotImplementedError):
        text += " (this exercise is not implemented yet)"
    return text if len(text) < 600 else text[:600] + " …"


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Outcome:
    """Run ``fn(*args, **kwargs)``; never raises (except KeyboardInterrupt/SystemExit), never prints to stderr."""
    out = Outcome()
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn", under="ignore"), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("always")
        try:
            out.value = fn(*args, **kwargs)
        except Exception as exc:  # the student's bug is a result, not a crash of the check
            out.error = error_text(exc)
    seen: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.append(text)
    out.warnings = seen[:5]
    return out
