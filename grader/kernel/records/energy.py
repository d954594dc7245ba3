"""Kernel side of chapter 5's checks (RBM, DBN): run the student's function on a plan's inputs, return plain data.

Samplers get their random numbers from :class:`PlannedUniforms`, which stands in for a NumPy
``Generator``: ``rng.random(shape)`` returns the uniforms the plan drew, in the plan's order, so
the student's sampler and dlcore's reference see the same random numbers and can be compared
exactly. Nothing here knows the expected results.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from grader.kernel.student import Outcome, call

__all__ = ["PlannedUniforms", "record_energy", "record_boltzmann", "record_free_energy", "record_conditional",
           "record_reconstruction_error", "record_log_likelihood", "record_sampler", "record_cd", "record_pcd",
           "record_dbn_pretraining", "record_dbn_training"]


class PlannedUniforms:
    """A stand-in for ``numpy.random.Generator`` whose ``random(shape)`` serves planned U[0, 1) blocks in order.

    A request whose shape differs from the next planned block raises ValueError naming both (the order
    of the draws is part of the exercise). After the planned blocks, further draws come from a seeded
    generator, so drawing a sample that is not used changes nothing.
    """

    def __init__(self, blocks: list, labels: list | None = None, seed: int = 0) -> None:
        self._blocks = [np.array(b, dtype="float64") for b in blocks]
        self._labels = list(labels or [])
        self._next = 0
        self._extra = np.random.default_rng(int(seed))
        self.draws: list[list[int]] = []

    @staticmethod
    def _shape(size: Any) -> tuple[int, ...]:
        if size is None:
            return ()
        if isinstance(size, (int, np.integer)):
            return (int(size),)
        return tuple(int(s) for s in size)

    def random(self, size: Any = None, dtype: Any = np.float64, out: Any = None) -> Any:
        shape = self._shape(size)
        self.draws.append(list(shape))
        if self._next < len(self._blocks):
            block = self._blocks[self._next]
            if block.shape != shape:
                what = f" ({self._labels[self._next]})" if self._next < len(self._labels) else ""
                raise ValueError(
                    f"rng.random{shape!r}: draw #{self._next + 1} should have shape {block.shape}{what}; "
                    "draw the uniforms in the order the exercise gives, one array per layer sample")
            self._next += 1
            value = block.copy()
        else:
            value = self._extra.random(shape)
        value = np.asarray(value, dtype="float64").astype(dtype)
        if not shape:
            value = value[()]
        if out is not None:
            out[...] = value
            return out
        return value

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None) -> Any:
        return low + (high - low) * self.random(size)

    def __repr__(self) -> str:
        return "PlannedUniforms(the check's random numbers)"


def _plain(v: Any, depth: int = 0) -> Any:
    """Plain data for a record: arrays, numbers, strings, tuples/lists/dicts of them; else a description."""
    if depth > 4:
        return f"<{type(v).__name__}>"
    if isinstance(v, np.ndarray):
        return v.copy() if v.dtype.kind in "biuf" else f"<array of dtype {v.dtype}>"
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, str) or v is None:
        return v
    if isinstance(v, tuple):
        return tuple(_plain(x, depth + 1) for x in v)
    if isinstance(v, list):
        return [_plain(x, depth + 1) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x, depth + 1) for k, x in v.items()}
    if hasattr(v, "__array__") and not callable(v):
        try:
            a = np.asarray(v)
            return a.copy() if a.dtype.kind in "biuf" else f"<{type(v).__name__}>"
        except Exception:
            pass
    return f"<{type(v).__name__}>"


def _outcome(out: Outcome) -> dict:
    return out.as_record(_plain)


def _run_formula(student: Any, inputs: dict) -> dict:
    args = [copy.deepcopy(a) for a in inputs["args"]]
    out = call(student, *args)
    rec = _outcome(out)
    rec["mutated"] = [i for i, (a, b) in enumerate(zip(args, inputs["args"], strict=True))
                      if isinstance(b, np.ndarray) and not (isinstance(a, np.ndarray) and a.shape == b.shape
                                                             and np.array_equal(a, b))]
    return rec


record_energy = record_boltzmann = record_free_energy = record_conditional = _run_formula
record_reconstruction_error = record_log_likelihood = _run_formula


def _sampler_call(student: Any, args: list, blocks: list, labels: list, seed: int) -> dict:
    rng = PlannedUniforms(blocks, labels, seed)
    args = [copy.deepcopy(a) for a in args]
    out = call(student, *args, rng)
    rec = _outcome(out)
    rec["draws"] = rng.draws
    return rec


def record_sampler(student: Any, inputs: dict) -> dict:
    return _sampler_call(student, inputs["args"], inputs["blocks"], inputs["labels"], inputs["extra_seed"])


def record_cd(student: Any, inputs: dict) -> dict:
    rec = _sampler_call(student, inputs["args"], inputs["blocks"], inputs["labels"], inputs["extra_seed"])
    exact = inputs.get("exact")
    if exact and not rec["error"]:
        runs = []
        for k in exact["ks"]:
            run = _sampler_call(student, [exact["v"], exact["W"], exact["b"], exact["c"], k], [], [],
                                exact["seed"] + int(k))
            runs.append({"value": run["value"], "error": run["error"], "warnings": run["warnings"]})
        rec["exact_runs"] = runs
    return rec


record_pcd = record_sampler


def record_dbn_pretraining(student: Any, inputs: dict) -> dict:
    """The student's greedy loop, with a stand-in ``train_rbm`` that records its input and returns planned weights."""
    planned = inputs["layers"]
    calls: list[dict] = []

    def train_rbm(x: Any, n_hidden: Any) -> tuple:
        a = np.asarray(x)
        calls.append({"x": np.array(a, dtype="float64") if a.dtype.kind in "biuf" else f"<{type(x).__name__}>",
                      "n_hidden": _plain(n_hidden)})
        i = len(calls) - 1
        if i >= len(planned):
            raise RuntimeError(f"train_rbm was called {len(calls)} times for a DBN with {len(planned)} RBMs")
        W, b, c = planned[i]
        return np.array(W), np.array(b), np.array(c)

    X = np.array(inputs["X"])
    out = call(student, X, list(inputs["layer_sizes"]), train_rbm)
    rec = _outcome(out)
    rec["calls"] = calls
    rec["X_changed"] = not np.array_equal(X, inputs["X"])
    return rec


def record_dbn_training(student: Any, inputs: dict) -> dict:
    """Train the student's classifier on the plan's training data, pretraining through a stand-in ``train_layer``
    that hands out the plan's RBMs in order; return its class scores on the test INPUTS."""
    planned = inputs["layers"]
    layer_calls: list = []

    def train_layer(x: Any, n_hidden: Any) -> tuple:
        layer_calls.append(_plain(n_hidden))
        i = len(layer_calls) - 1
        if i >= len(planned):
            raise RuntimeError(f"train_layer was called {len(layer_calls)} times for a DBN with {len(planned)} RBMs")
        return tuple(np.array(a) for a in planned[i])

    out = call(student, np.array(inputs["x_train"]), np.array(inputs["t_train"]), inputs["seed"],
               train_layer=train_layer)
    rec: dict = {"error": out.error, "warnings": out.warnings, "returned": f"<{type(out.value).__name__}>",
                 "scores": None, "predict_error": None, "layer_calls": layer_calls}
    if out.error is None:
        if not callable(out.value):
            return rec
        pred = call(out.value, np.array(inputs["x_test"]))
        rec["predict_error"] = pred.error
        rec["scores"] = _plain(pred.value)
    return rec
