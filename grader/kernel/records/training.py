"""Records of chapter 3's training-technique checks (kernel side).

``record_batchnorm``: training steps (forward, backward, running statistics) then one evaluation step;
``record_dropout``: a training forward/backward and an evaluation forward/backward with a seeded layer;
``record_transform``: a data transform (standardisation, whitening) on the plan's data;
``record_training``: the closing experiment's training function on the plan's training data, returning
scores for the plan's test INPUTS (the labels stay with the grader). Its optimizer is a plain gradient
step supplied here, so the experiment's check does not depend on the optimizer exercises.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.kernel.records._common import Trace, array_or_text, origin, outcome
from grader.kernel.student import call


def _grads(layer: Any) -> dict:
    grads = getattr(layer, "grads", None)
    if not isinstance(grads, dict):
        return {}
    return {str(k): array_or_text(v) for k, v in grads.items()}


def _stat(layer: Any, name: str) -> Any:
    return array_or_text(getattr(layer, name, None))


def record_batchnorm(student: Any, inputs: dict) -> dict:
    rec: dict = {"origin": origin(student), "build": None, "steps": [], "eval": None}
    with Trace(inputs.get("trace"), rec["origin"]["calls_reference"]):
        _batchnorm_steps(student, inputs, rec)
    return rec


def _batchnorm_steps(student: Any, inputs: dict, rec: dict) -> None:
    built = call(student, *inputs["args"], **dict(inputs["kwargs"]))
    rec["build"] = outcome(built)
    if built.error:
        return
    layer = built.value
    params = getattr(layer, "params", None)
    if not isinstance(params, dict) or set(params) != set(inputs["params"]):
        rec["build"]["error"] = (f"expected self.params with the keys {sorted(inputs['params'])}, got "
                                 f"{sorted(params) if isinstance(params, dict) else type(params).__name__}")
        return
    for k, v in inputs["params"].items():
        params[k] = v.copy()
    for x, dy in zip(inputs["xs"], inputs["dys"], strict=True):
        step: dict = {}
        fwd = call(layer.forward, x.copy(), train=True)
        step["forward"] = outcome(fwd, array_or_text(fwd.value) if fwd.error is None else None)
        step["running_mean"], step["running_var"] = _stat(layer, "running_mean"), _stat(layer, "running_var")
        if fwd.error is None:
            bwd = call(layer.backward, dy.copy())
            step["backward"] = outcome(bwd, array_or_text(bwd.value) if bwd.error is None else None)
            step["grads"] = _grads(layer)
        rec["steps"].append(step)
        if fwd.error or step["backward"]["error"]:
            return
    ev: dict = {}
    fwd = call(layer.forward, inputs["x_eval"].copy(), train=False)
    ev["forward"] = outcome(fwd, array_or_text(fwd.value) if fwd.error is None else None)
    ev["running_mean"], ev["running_var"] = _stat(layer, "running_mean"), _stat(layer, "running_var")
    if fwd.error is None:
        bwd = call(layer.backward, inputs["dy_eval"].copy())
        ev["backward"] = outcome(bwd, array_or_text(bwd.value) if bwd.error is None else None)
        ev["grads"] = _grads(layer)
    rec["eval"] = ev


def record_dropout(student: Any, inputs: dict) -> dict:
    rec: dict = {"origin": origin(student), "build": None}
    with Trace(inputs.get("trace"), rec["origin"]["calls_reference"]):
        _dropout_steps(student, inputs, rec)
    return rec


def _dropout_steps(student: Any, inputs: dict, rec: dict) -> None:
    built = call(student, inputs["p"], rng=int(inputs["seed"]))
    rec["build"] = outcome(built)
    if built.error:
        return
    layer = built.value
    x, dy = inputs["x"], inputs["dy"]
    for mode, train in (("train", True), ("eval", False)):
        part: dict = {}
        fwd = call(layer.forward, x.copy(), train=train)
        part["forward"] = outcome(fwd, array_or_text(fwd.value) if fwd.error is None else None)
        if fwd.error is None:
            bwd = call(layer.backward, dy.copy())
            part["backward"] = outcome(bwd, array_or_text(bwd.value) if bwd.error is None else None)
        rec[mode] = part


def record_transform(student: Any, inputs: dict) -> dict:
    rec: dict = {"origin": origin(student), "cases": []}
    for case in inputs["cases"]:
        x = case["x"].copy()
        out = call(student, x, **dict(case["kwargs"]))
        value = out.value[0] if isinstance(out.value, tuple) and len(out.value) > 0 else out.value
        rec["cases"].append({**outcome(out, array_or_text(value) if out.error is None else None),
                             "mutated": not np.array_equal(x, case["x"])})
        if out.error:
            break
    return rec


class _GradientStep:
    """w ← w − ε g for every key, in place (the grader's optimizer for the closing experiment's check)."""

    def __init__(self, lr: float) -> None:
        self.lr = float(lr)

    def update(self, params: dict, grads: dict) -> None:
        for key in list(params):
            w = params[key]
            w -= self.lr * grads[key]
            params[key] = w


def record_training(student: Any, inputs: dict) -> dict:
    rec: dict = {"origin": origin(student)}
    out = call(student, inputs["x_train"].copy(), inputs["t_train"].copy(), inputs["x_test"].copy(),
               _GradientStep(inputs["lr"]), progress=False, **dict(inputs["kwargs"]))
    scores, history = None, None
    if out.error is None:
        if isinstance(out.value, tuple) and len(out.value) == 2:
            scores, history = array_or_text(out.value[0]), out.value[1]
            try:
                history = [float(h) for h in history]
            except (TypeError, ValueError):
                history = f"<a {type(history).__name__}>"
        else:
            scores = f"<a {type(out.value).__name__}>"
    rec.update(outcome(out), scores=scores, history=history)
    return rec
