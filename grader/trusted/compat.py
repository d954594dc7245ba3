"""Names the chapters' plans use through ``grader.checks`` (trusted side): the layer plan as a dataclass,
the comparison helpers, the JSON form of plans and records. ``grader.checks`` resolves them lazily, so the
kernel's copy of ``grader/checks.py`` never imports this module."""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from grader.kernel.wire import decode as _decode
from grader.kernel.wire import encode as _encode
from grader.kinds import Plan, Record
from grader.trusted.messages import _FORMULAS, _as_array, _close, _rel_error, delegation  # noqa: F401
from grader.trusted.messages import incomplete as _incomplete  # noqa: F401
from grader.trusted.plans import core


@contextlib.contextmanager
def _quiet(stdout: bool = False) -> Iterator[None]:
    """Silence warnings, floating-point reports and stderr (and stdout when asked)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.enter_context(np.errstate(all="ignore"))
        stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        if stdout:
            stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        yield


_delegation = delegation


@dataclass
class LayerPlan:
    """A layer check's plan with inputs and the reference's results per case (see plans.core.plan_layer)."""

    reference: str
    name: str
    args: list
    kwargs: dict
    is_loss: bool
    n_inputs: int
    params: dict
    cases: list
    check_numeric: bool = True
    seed: int = 0


@dataclass
class LayerRecord:
    provenance: dict = field(default_factory=dict)
    build_error: str | None = None
    param_shapes: dict | None = None
    param_error: str | None = None
    cases: list = field(default_factory=list)
    cached_attrs: list = field(default_factory=list)


def plan_layer(reference: str, **options: Any) -> LayerPlan:
    p = core.plan_layer(reference, **options)
    cases = [{**c, **e} for c, e in zip(p.inputs["cases"], p.expected["cases"], strict=True)]
    return LayerPlan(p.reference, p.info["name"], list(p.inputs["args"]), dict(p.inputs["kwargs"]), p.inputs["is_loss"],
                     len(cases[0]["inputs"]) if cases else 1, p.inputs["params"], cases,
                     bool(options.get("check_numeric", True)), p.info["seed"])


def judge_layer(plan: LayerPlan, rec: LayerRecord, **kw: Any) -> Any:
    p = Plan("layer", plan.reference, {"args": plan.args, "kwargs": plan.kwargs, "params": plan.params,
                                       "is_loss": plan.is_loss,
                                       "cases": [{"inputs": c["inputs"], "dy": c["dy"]} for c in plan.cases]},
             {"cases": [{k: c.get(k, {} if k == "numeric" else None) for k in ("out", "dx", "grads", "numeric")}
                        for c in plan.cases]}, {"name": plan.name, "seed": plan.seed})
    return core.judge_layer(p, asdict(rec), **kw)


_CLASSES = {c.__name__: c for c in (Plan, Record, LayerPlan, LayerRecord)}


def to_json(obj: Any) -> str:
    return json.dumps({"type": type(obj).__name__, "data": _encode(asdict(obj))})


def from_json(text: str | dict) -> Any:
    raw = json.loads(text) if isinstance(text, str) else text
    cls = _CLASSES[raw["type"]]
    data = _decode(raw["data"])
    return cls(**{k: v for k, v in data.items() if k in {f.name for f in fields(cls)}})


def same_inputs(a: Any, b: Any) -> bool:
    """Exact equality of plain data (arrays: shape, dtype and values, NaN equal to NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or a.shape != b.shape or a.dtype != b.dtype:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_inputs(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_inputs(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b
