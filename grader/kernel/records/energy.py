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

from grader.kernel.records._common import plain_data as plain
from grader.kernel.student import call

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

    def random(self, size: Any = None, dtype: Any = np.float64, out: Any = None) -> Any:
        shape = () if size is None else tuple(int(s) for s in np.atleast_1d(size))
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


def _run_formula(student: Any, inputs: dict) -> dict:
    args = [copy.deepcopy(a) for a in inputs["args"]]
    rec = call(student, *args).as_record(plain)
    rec["mutated"] = [i for i, (a, b) in enumerate(zip(args, inputs["args"], strict=True))
                      if isinstance(b, np.ndarray) and not (isinstance(a, np.ndarray) and np.array_equal(a, b))]
    return rec


record_energy = record_boltzmann = record_free_energy = record_conditional = _run_formula
record_reconstruction_error = record_log_likelihood = _run_formula


def record_sampler(student: Any, inputs: dict) -> dict:
    """The student's sampler on the plan's inputs with :class:`PlannedUniforms` as its rng; the draws it made."""
    rng = PlannedUniforms(inputs["blocks"], inputs["labels"], inputs["extra_seed"])
    rec = call(student, *copy.deepcopy(inputs["args"]), rng).as_record(plain)
    rec["draws"] = rng.draws
    return rec


def record_cd(student: Any, inputs: dict) -> dict:
    rec = record_sampler(student, inputs)
    exact = inputs["exact"]
    if exact and not rec["error"]:
        rec["exact_runs"] = [
            call(student, *copy.deepcopy([exact["v"], exact["W"], exact["b"], exact["c"]]), k,
                 PlannedUniforms([], [], exact["seed"] + int(k))).as_record(plain) for k in exact["ks"]]
    return rec


record_pcd = record_sampler


def _stand_in(name: str, planned: list, calls: list, note: Any) -> Any:
    """A stand-in ``name(x, n_hidden)`` that notes each call (``note(x, n_hidden)``) and hands out the planned
    (W, b, c) in order."""
    def train(x: Any, n_hidden: Any) -> tuple:
        calls.append(note(x, n_hidden))
        if len(calls) > len(planned):
            raise RuntimeError(f"{name} was called {len(calls)} times for a DBN with {len(planned)} RBMs")
        return tuple(np.array(a) for a in planned[len(calls) - 1])
    return train


def record_dbn_pretraining(student: Any, inputs: dict) -> dict:
    """The student's greedy loop, with a stand-in ``train_rbm`` that records its input and returns planned weights."""
    calls: list[dict] = []

    def note(x: Any, n_hidden: Any) -> dict:
        a = np.asarray(x)
        return {"x": np.array(a, dtype="float64") if a.dtype.kind in "biuf" else f"<{type(x).__name__}>",
                "n_hidden": plain(n_hidden)}

    X = np.array(inputs["X"])
    rec = call(student, X, list(inputs["layer_sizes"]), _stand_in("train_rbm", inputs["layers"], calls, note)
               ).as_record(plain)
    rec["calls"] = calls
    rec["X_changed"] = not np.array_equal(X, inputs["X"])
    return rec


def record_dbn_training(student: Any, inputs: dict) -> dict:
    """Train the student's classifier on the plan's training data, pretraining through a stand-in ``train_layer``
    that hands out the plan's RBMs in order; return its class scores on the test INPUTS."""
    layer_calls: list = []
    train_layer = _stand_in("train_layer", inputs["layers"], layer_calls, lambda x, n_hidden: plain(n_hidden))
    out = call(student, np.array(inputs["x_train"]), np.array(inputs["t_train"]), inputs["seed"],
               train_layer=train_layer)
    rec: dict = {"error": out.error, "warnings": out.warnings, "returned": f"<{type(out.value).__name__}>",
                 "scores": None, "predict_error": None, "layer_calls": layer_calls}
    if out.error is None and callable(out.value):
        pred = call(out.value, np.array(inputs["x_test"]))
        rec["predict_error"] = pred.error
        rec["scores"] = plain(pred.value)
    return rec
