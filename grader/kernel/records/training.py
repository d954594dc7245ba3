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

from grader.kernel.records._common import array_or_text, origin, trace
from grader.kernel.student import call


def _step(layer: Any, x: np.ndarray, dy: np.ndarray, train: bool) -> dict:
    """forward(x, train=...), the running statistics right after it, then backward(dy) and the grads."""
    fwd = call(layer.forward, x.copy(), train=train)
    part = {"forward": fwd.as_record(array_or_text), **{name: array_or_text(getattr(layer, name, None))
                                                         for name in ("running_mean", "running_var")}}
    if fwd.error is None:
        part["backward"] = call(layer.backward, dy.copy()).as_record(array_or_text)
        grads = getattr(layer, "grads", None)
        part["grads"] = {str(k): array_or_text(v) for k, v in grads.items()} if isinstance(grads, dict) else {}
    return part


def record_batchnorm(student: Any, inputs: dict) -> dict:
    rec: dict = {"origin": origin(student), "build": None, "steps": [], "eval": None}
    with trace(inputs.get("trace"), rec["origin"]["calls_reference"]):
        built = call(student, *inputs["args"], **dict(inputs["kwargs"]))
        rec["build"] = {"error": built.error, "warnings": built.warnings}
        if built.error:
            return rec
        layer = built.value
        params = getattr(layer, "params", None)
        if not isinstance(params, dict) or set(params) != set(inputs["params"]):
            rec["build"]["error"] = (f"expected self.params with the keys {sorted(inputs['params'])}, got "
                                     f"{sorted(params) if isinstance(params, dict) else type(params).__name__}")
            return rec
        for k, v in inputs["params"].items():
            params[k] = v.copy()
        for x, dy in zip(inputs["xs"], inputs["dys"], strict=True):
            rec["steps"].append(_step(layer, x, dy, True))
            if "backward" not in rec["steps"][-1] or rec["steps"][-1]["backward"]["error"]:
                return rec
        rec["eval"] = _step(layer, inputs["x_eval"], inputs["dy_eval"], False)
    return rec


def record_dropout(student: Any, inputs: dict) -> dict:
    rec: dict = {"origin": origin(student), "build": None}
    with trace(inputs.get("trace"), rec["origin"]["calls_reference"]):
        built = call(student, inputs["p"], rng=int(inputs["seed"]))
        rec["build"] = {"error": built.error, "warnings": built.warnings}
        if built.error is None:
            rec["train"] = _step(built.value, inputs["x"], inputs["dy"], True)
            rec["eval"] = _step(built.value, inputs["x"], inputs["dy"], False)
    return rec


def record_transform(student: Any, inputs: dict) -> dict:
    rec: dict = {"origin": origin(student), "cases": []}
    for case in inputs["cases"]:
        x = case["x"].copy()
        out = call(student, x, **dict(case["kwargs"]))
        value = out.value[0] if isinstance(out.value, tuple) and len(out.value) > 0 else out.value
        rec["cases"].append({"value": array_or_text(value), "error": out.error, "warnings": out.warnings,
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
    rec.update(error=out.error, warnings=out.warnings, scores=scores, history=history)
    return rec
