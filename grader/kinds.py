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

import functools
import importlib
import pkgutil
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


def run(kind: str, student: Any, reference: str, **options: Any) -> None:
    """Plan, record and judge one check in this process; print "✔ …" or raise AssertionError."""
    __tracebackhide__ = True
    from grader import checks

    k = find(kind)
    if k is None:
        raise ValueError(f"grader: there is no check kind {kind!r} (a bug in the notebook's test cell)")
    try:  # the dlcore object the delegation checks look for; a kind may name something dlcore lacks
        ref_obj = checks.resolve_reference(reference)
    except (ValueError, ImportError, AttributeError):
        ref_obj = None
    with checks._quiet():
        plan = k.plan(reference, **options)
        checks._run_check(kind, plan, ref_obj, lambda p: p.inputs,
                          lambda: Record(k.record(student, plan.inputs)),
                          lambda p, r: k.judge(p, r.data))


def helper(kind: str) -> Callable[..., None] | None:
    """The public ``checks.check_<kind>`` function for a registered kind (docstring from its plan)."""
    k = find(kind)
    if k is None:
        return None

    def check(student: Any, reference: str, **options: Any) -> None:
        __tracebackhide__ = True
        run(kind, student, reference, **options)

    check.__name__ = check.__qualname__ = f"check_{kind}"
    check.__doc__ = k.plan.__doc__
    return check
