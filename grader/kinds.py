"""Check kinds: the contract every declarative check follows, and the runner that ties its steps together.

A test cell is a list of calls ``checks.check_<kind>(StudentName, "Reference", option=literal, ...)``.
Each kind is three functions, found by name:

    plan_<kind>(reference: str, **options) -> Plan   grader/trusted/plans/<topic>.py  (trusted: seeds → inputs,
                                                      dlcore's reference → plan.expected)
    record_<kind>(student, inputs: dict) -> dict     grader/kernel/records/<topic>.py (kernel: runs the student's
                                                      object on plan.inputs ONLY, returns plain data)
    judge_<kind>(plan, record: dict) -> Verdict      grader/trusted/plans/<topic>.py  (trusted and pure)

In a notebook the three run back to back (:func:`helper`). In batch grading the trusted side reads the
calls from the source notebook, plans, sends the kernel ``plan.inputs`` and the student object's
name, and judges the record outside the kernel: the kernel never sees ``expected`` or a hidden test.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader.kernel.runner import find_function, import_modules

KERNEL_PACKAGE = "grader.kernel.records"
TRUSTED_PACKAGE = "grader.trusted.plans"


@dataclass
class Plan:
    """One check's plan. ``inputs`` is all the kernel gets; ``expected`` and ``info`` stay trusted."""

    kind: str
    reference: str
    inputs: dict
    expected: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Kind:
    name: str
    plan: Callable[..., Plan]
    record: Callable[[Any, dict], dict]
    judge: Callable[[Plan, dict], Any]


_modules = functools.cache(import_modules)


def _find(package: str, attr: str) -> Callable | None:
    return find_function(_modules(package)[0], attr)


@functools.cache
def find(kind: str) -> Kind | None:
    """The kind called ``kind``, or None when no module defines all three of its functions."""
    if not kind.isidentifier():
        return None
    plan, judge = _find(TRUSTED_PACKAGE, f"plan_{kind}"), _find(TRUSTED_PACKAGE, f"judge_{kind}")
    record = _find(KERNEL_PACKAGE, f"record_{kind}")
    return None if plan is None or judge is None or record is None else Kind(kind, plan, record, judge)


def broken(kind: str) -> str:
    """Why ``kind`` is missing when a module that defines it failed to import ("" otherwise): a broken module
    costs its own kinds only, and the message names it."""
    found = [f"{name} failed to import ({error})" for package in (TRUSTED_PACKAGE, KERNEL_PACKAGE)
             for name, error in _modules(package)[1].items()
             if re.search(rf"^def (plan|record|judge)_{re.escape(kind)}\(",
                          Path(importlib.util.find_spec(name).origin).read_text(encoding="utf-8"), re.M)]
    return f": {'; '.join(found)}" if found else ""


@contextlib.contextmanager
def _quiet() -> Any:
    """No warnings, floating-point reports, stdout or stderr from trusted code running in a notebook."""
    with warnings.catch_warnings(), np.errstate(all="ignore"), contextlib.redirect_stderr(io.StringIO()), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _split(options: dict) -> tuple[dict, dict]:
    """Literal options (for the plan) and student objects passed by name (for the record, by their name)."""
    objects = {k: v for k, v in options.items() if callable(v) and not isinstance(v, (str, bytes))}
    return {k: getattr(v, "__name__", k) if k in objects else v for k, v in options.items()}, objects


def judge(kind: str, plan: Plan, record: Any) -> Any:
    """The verdict on one record: also when the record says the student's object is missing or broke."""
    from grader.trusted.messages import Verdict

    if not isinstance(record, dict):
        return Verdict(False, message="the grader found no result of this check (the test did not run)")
    if "__missing__" in record:
        return Verdict(False, message=str(record["__missing__"]))
    if "__error__" in record:
        return Verdict(False, message=f"checking your code failed: {record['__error__']}")
    try:
        return find(kind).judge(plan, record)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:  # a malformed (forged) record
        return Verdict(False, message=f"the record of this check is malformed ({type(exc).__name__}), so it cannot "
                                      "count")


def helper(kind: str) -> Callable[..., None] | None:
    """The public ``checks.check_<kind>`` function for a registered kind (docstring from its plan): it plans,
    records and judges in this process and prints "✔ …" or raises CheckFailed. The record sees ``plan.inputs``
    after a trip through the wire format, exactly as in batch grading."""
    from grader.kernel import wire
    from grader.trusted.messages import CheckFailed

    k = find(kind)
    if k is None:
        return None

    def check(student: Any, reference: str = "", **options: Any) -> None:
        __tracebackhide__ = True
        literal, objects = _split(options)
        with _quiet():  # the reference's own warnings and prints are not the student's
            plan = k.plan(reference, **literal) if reference else k.plan(**literal)
        inputs = {**wire.decode(wire.encode(plan.inputs)), **objects}
        try:
            record = wire.decode(wire.encode(k.record(student, inputs)))
        except Exception as exc:  # a bug of the record function, not of the student
            record = {"__error__": f"{type(exc).__name__}: {exc}"}
        with _quiet():
            verdict = judge(kind, plan, record)
        if not verdict.ok:
            raise CheckFailed(verdict.message)
        print(verdict.text())

    check.__name__ = check.__qualname__ = f"check_{kind}"
    check.__doc__ = k.plan.__doc__
    return check
