"""Check kinds: the contract every declarative check follows, and the runner that ties its steps together.

A test cell is a list of calls ``checks.check_<kind>(StudentName, "Reference", option=literal, ...)``.
Each kind is three functions, found by name:

    plan_<kind>(reference: str, **options) -> Plan   grader/trusted/plans/<topic>.py  (trusted: seeds → inputs,
                                                      dlcore's reference → plan.expected)
    record_<kind>(student, inputs: dict) -> dict     grader/kernel/records/<topic>.py (kernel: runs the student's
                                                      object on plan.inputs ONLY, returns plain data)
    judge_<kind>(plan, record: dict) -> Verdict      grader/trusted/plans/<topic>.py  (trusted and pure)

In a notebook the three run back to back (:func:`run`). In batch grading the trusted side reads the
calls from the source notebook, plans, sends the kernel ``plan.inputs`` and the student object's
name, and judges the record outside the kernel: the kernel never sees ``expected`` or a hidden test.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import pkgutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class Record:
    """What the student's code gave on ``plan.inputs`` (plain data)."""

    data: dict


@dataclass(frozen=True)
class Kind:
    name: str
    plan: Callable[..., Plan]
    record: Callable[[Any, dict], dict]
    judge: Callable[[Plan, dict], Any]


def _find(package: str, attr: str) -> Callable | None:
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package}.{info.name}")
        fn = getattr(module, attr, None)
        if callable(fn):
            return fn
    return None


@functools.cache
def find(kind: str) -> Kind | None:
    """The kind called ``kind``, or None when no module defines all three of its functions."""
    if not kind.isidentifier():
        return None
    try:
        plan, judge = _find(TRUSTED_PACKAGE, f"plan_{kind}"), _find(TRUSTED_PACKAGE, f"judge_{kind}")
    except ImportError:  # the kernel at grading time has no trusted package
        return None
    record = _find(KERNEL_PACKAGE, f"record_{kind}")
    if plan is None or judge is None or record is None:
        return None
    return Kind(kind, plan, record, judge)


@contextlib.contextmanager
def _quiet() -> Any:
    """No warnings, floating-point reports, stdout or stderr from trusted code running in a notebook."""
    import numpy as np

    with warnings.catch_warnings(), np.errstate(all="ignore"), contextlib.redirect_stderr(io.StringIO()), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _split(options: dict) -> tuple[dict, dict]:
    """Literal options (for the plan) and student objects passed by name (for the record, by their name)."""
    literal, objects = {}, {}
    for key, value in options.items():
        if callable(value) and not isinstance(value, (str, bytes)):
            objects[key] = value
            literal[key] = getattr(value, "__name__", key)
        else:
            literal[key] = value
    return literal, objects


def judge(kind: str, plan: Plan, record: Any) -> Any:
    """The verdict on one record: also when the record says the student's object is missing or broke."""
    from grader.checks import Verdict

    if not isinstance(record, dict):
        return Verdict(False, message="the grader found no result of this check (the test did not run)")
    if "__missing__" in record:
        return Verdict(False, message=str(record["__missing__"]))
    if "__error__" in record:
        return Verdict(False, message=f"checking your code failed: {record['__error__']}")
    k = find(kind)
    try:
        return k.judge(plan, record)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:  # a malformed (forged) record
        return Verdict(False, message=f"the record of this check is malformed ({type(exc).__name__}), so it cannot "
                                      "count")


def run(kind: str, student: Any, reference: str = "", **options: Any) -> None:
    """Plan, record and judge one check in this process; print "✔ …" or raise CheckFailed.

    The record sees ``plan.inputs`` after a trip through the wire format, exactly as in batch grading.
    """
    __tracebackhide__ = True
    from grader.kernel import wire
    from grader.trusted.messages import CheckFailed

    k = find(kind)
    if k is None:
        raise ValueError(f"grader: there is no check kind {kind!r} (a bug in the notebook's test cell)")
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


def helper(kind: str) -> Callable[..., None] | None:
    """The public ``checks.check_<kind>`` function for a registered kind (docstring from its plan)."""
    k = find(kind)
    if k is None:
        return None

    def check(student: Any, reference: str = "", **options: Any) -> None:
        __tracebackhide__ = True
        run(kind, student, reference, **options)

    check.__name__ = check.__qualname__ = f"check_{kind}"
    check.__doc__ = k.plan.__doc__
    return check
