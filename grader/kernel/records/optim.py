"""Records of chapter 3's optimizer, schedule and initializer checks (kernel side).

``record_optimizer`` drives the student's optimizer with the plan's gradient sequence on copies of
the plan's parameters and keeps the parameters after every update; ``record_schedule`` evaluates a
schedule at t = 0, 1, ...; ``record_initializer`` draws weights of the plan's shapes from seeds.
Nothing here knows the expected values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.kernel.records._common import array_or_text, origin, trace
from grader.kernel.student import call


def record_optimizer(student: Any, inputs: dict) -> dict:
    """Build ``student(**kwargs)``; run ``update(params, grads)`` once per planned gradient set."""
    rec: dict = {"origin": origin(student), "build": None, "steps": []}
    with trace(inputs.get("trace"), rec["origin"]["calls_reference"]):
        built = call(student, **dict(inputs["kwargs"]))
        rec["build"] = {"error": built.error, "warnings": built.warnings}
        update = getattr(built.value, "update", None)
        if built.error is None and not callable(update):
            rec["build"]["error"] = f"the object has no update method (got a {type(built.value).__name__})"
        if rec["build"]["error"]:
            return rec
        originals = {k: np.array(v, dtype=v.dtype, copy=True) for k, v in inputs["params"].items()}
        params = dict(originals)                                   # the very arrays the optimizer must update
        for grads_in in inputs["grads"]:
            grads = {k: np.array(v, copy=True) for k, v in grads_in.items()}
            out = call(update, params, grads)
            rec["steps"].append({
                "error": out.error, "warnings": out.warnings,
                "params": {k: array_or_text(params.get(k)) for k in originals},
                "in_place": {k: params.get(k) is originals[k] for k in originals},
                "originals": {k: originals[k].copy() for k in originals},
                "grads_changed": sorted(k for k in grads_in if not (
                    isinstance(grads.get(k), np.ndarray) and grads[k].shape == grads_in[k].shape
                    and np.array_equal(grads[k], grads_in[k])))})
            if out.error:
                break
            # later updates start from what the optimizer left in the dict (a rebinding student keeps going)
            params = {k: (params[k] if isinstance(params.get(k), np.ndarray) else originals[k]) for k in originals}
    return rec


def _number(v: Any) -> float | str | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return f"<a {type(v).__name__}>"


def record_schedule(student: Any, inputs: dict) -> dict:
    """``student(t, **kwargs)`` for every planned t."""
    rec: dict = {"origin": origin(student), "values": []}
    for t in inputs["ts"]:
        with trace(inputs.get("trace"), rec["origin"]["calls_reference"]):
            out = call(student, int(t), **dict(inputs["kwargs"]))
        rec["values"].append(out.as_record(_number))
        if out.error:
            break
    return rec


def record_initializer(student: Any, inputs: dict) -> dict:
    """Per shape: two draws with the same seed and one with another seed (``student(shape, rng=seed)``)."""
    rec: dict = {"origin": origin(student), "cases": []}
    for case in inputs["cases"]:
        shape, seed = tuple(case["shape"]), int(case["seed"])
        draws = []
        for s in (seed, seed, seed + 1):
            with trace(inputs.get("trace"), rec["origin"]["calls_reference"]):
                out = call(student, shape, rng=s)
            draws.append(out.as_record(array_or_text))
            if out.error:
                break
        rec["cases"].append(draws)
        if any(d["error"] for d in draws):
            break
    return rec
