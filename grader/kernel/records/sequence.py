"""Kernel side of the chapter-6 kinds (recurrent layers, attention, sequence training).

Every record runs the student's class or function on a plan's ``inputs`` only and returns plain data.
Layers are built afresh for every case with the plan's constructor arguments, receive the plan's
parameters in ``params`` (same names as dlcore's reference), run ``forward`` on the case's inputs
and ``backward`` on its upstream gradients. Test doubles (:class:`LeakyIntegrator`) stand in for the
recurrent layers a wrapper exercise needs, so the wrapper is checked on its own.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from grader.kernel.records._common import plain_data as plain
from grader.kernel.records._common import swapped
from grader.kernel.records._sequence_standins import STANDINS
from grader.kernel.student import call

__all__ = ["LeakyIntegrator", "MixingDouble", "ScaleDouble", "DOUBLES",
           "record_rnn_step", "record_bptt", "record_bidirectional", "record_embedding",
           "record_time_loss", "record_attention", "record_mha", "record_clip", "record_sdpa",
           "record_next_symbol", "record_seq2seq", "record_sequence_training", "record_encoder_layer"]



def _name(student: Any) -> str:
    return str(getattr(student, "__name__", type(student).__name__))[:80]


class LeakyIntegrator:
    """A test double for a recurrent layer: h_t = a h_{t-1} + x_t W (N, T, D) -> (N, T, H); h_0 = 0.

    backward: δ_t = dhs_t + a δ_{t+1};  dW = Σ_t x_tᵀ δ_t;  dxs_t = δ_t Wᵀ. It depends on the past
    only, so reading a sequence forwards or backwards gives different results.
    """

    def __init__(self, input_size: int, hidden_size: int, decay: float = 0.5) -> None:
        self.input_size, self.hidden_size, self.decay = int(input_size), int(hidden_size), float(decay)
        self.params = {"W": np.zeros((self.input_size, self.hidden_size))}
        self.grads: dict = {}
        self.stateful = False
        self.xs: Any = None

    @classmethod
    def from_spec(cls, spec: dict) -> LeakyIntegrator:
        """The double a plan describes: ``{"input_size", "hidden_size", "decay", "W"}``."""
        layer = cls(spec["input_size"], spec["hidden_size"], spec["decay"])
        layer.params["W"] = np.array(spec["W"], dtype="float64")
        return layer

    def forward(self, xs: Any) -> Any:
        xs = np.asarray(xs)
        if xs.ndim != 3 or xs.shape[2] != self.input_size:
            raise ValueError(f"LeakyIntegrator: expected xs of shape (N, T, {self.input_size}), got {xs.shape}")
        self.xs = xs
        h = np.zeros((xs.shape[0], self.hidden_size))
        hs = []
        for t in range(xs.shape[1]):
            h = self.decay * h + xs[:, t] @ self.params["W"]
            hs.append(h)
        return np.stack(hs, axis=1)

    def backward(self, dhs: Any) -> Any:
        dhs = np.asarray(dhs)
        if self.xs is None or dhs.shape != self.xs.shape[:2] + (self.hidden_size,):
            raise ValueError(f"LeakyIntegrator: expected dhs of shape {self.xs.shape[:2] + (self.hidden_size,)}, "
                             f"got {dhs.shape}")
        delta = np.zeros((dhs.shape[0], self.hidden_size))
        dxs = np.zeros(self.xs.shape)
        dw = np.zeros_like(self.params["W"])
        for t in reversed(range(dhs.shape[1])):
            delta = dhs[:, t] + self.decay * delta
            dw += self.xs[:, t].T @ delta
            dxs[:, t] = delta @ self.params["W"].T
        self.grads = {"W": dw}
        return dxs


class MixingDouble:
    """A stand-in for multi-head self-attention with the same parameters: y = M (x Wv + bv) Wo + bo.

    M (T, T) averages over the steps (over the steps ≤ t when causal); Wq, bq, Wk, bk are not used
    (their gradients are zero). Simple enough to be obviously right, so a wiring check needs no MHA.
    """

    def __init__(self, embed_dim: int) -> None:
        e = int(embed_dim)
        self.params = {f"{w}{c}": np.zeros((e, e) if w == "W" else e) for c in "qkvo" for w in "Wb"}
        self.grads: dict = {}
        self.weights: Any = None

    @staticmethod
    def mixing(t: int, causal: bool) -> np.ndarray:
        m = np.tril(np.ones((t, t))) if causal else np.ones((t, t))
        return m / m.sum(axis=1, keepdims=True)

    def forward(self, x: Any, causal: bool = False, mask: Any = None) -> Any:
        p = self.params
        self.x = np.asarray(x)
        self.m = self.mixing(self.x.shape[1], bool(causal))
        self.mixed = np.einsum("ts,nse->nte", self.m, self.x @ p["Wv"] + p["bv"])
        self.weights = np.broadcast_to(self.m, (self.x.shape[0], 1) + self.m.shape)
        return self.mixed @ p["Wo"] + p["bo"]

    def backward(self, dy: Any) -> Any:
        p, dy = self.params, np.asarray(dy)
        dmixed = dy @ p["Wo"].T
        dv = np.einsum("ts,nte->nse", self.m, dmixed)
        self.grads = {k: np.zeros_like(v) for k, v in p.items()}
        self.grads["Wo"] = np.einsum("nte,ntf->ef", self.mixed, dy)
        self.grads["bo"] = dy.sum(axis=(0, 1))
        self.grads["Wv"] = np.einsum("nte,ntf->ef", self.x, dv)
        self.grads["bv"] = dv.sum(axis=(0, 1))
        return dv @ p["Wv"].T


class ScaleDouble:
    """A stand-in for layer normalization with the same parameters: y = gamma ⊙ x + beta (no normalizing)."""

    def __init__(self, num_features: int) -> None:
        self.params = {"gamma": np.ones(int(num_features)), "beta": np.zeros(int(num_features))}
        self.grads: dict = {}

    def forward(self, x: Any) -> Any:
        self.x = np.asarray(x)
        return self.params["gamma"] * self.x + self.params["beta"]

    def backward(self, dy: Any) -> Any:
        dy = np.asarray(dy)
        rows = tuple(range(dy.ndim - 1))
        self.grads = {"gamma": np.sum(dy * self.x, axis=rows), "beta": np.sum(dy, axis=rows)}
        return dy * self.params["gamma"]


#: The sub-layers a check may replace by stand-ins, by the name of the stand-in.
DOUBLES = {"mixing": MixingDouble, "scale": ScaleDouble}


# --------------------------------------------------------------------------- layers


def _build(student: Any, inputs: dict, rec: dict) -> tuple | None:
    """The student's layer from the plan's constructor arguments (with doubles where asked), params loaded."""
    doubles = [LeakyIntegrator.from_spec(spec) for spec in inputs.get("doubles", [])]
    made = call(student, *doubles, *copy.deepcopy(inputs["args"]), **copy.deepcopy(inputs["kwargs"]))
    if made.error or made.warnings:
        rec["build_error"] = made.error or "; ".join(made.warnings)
        return None
    layer = made.value
    swap = inputs.get("swap", {})
    if swap:
        parts = getattr(layer, "parts", None)
        if not isinstance(parts, dict) or not set(swap) <= set(parts):
            rec["build_error"] = (f"the layer must keep its sub-layers in self.parts with the keys {sorted(swap)} "
                                  "(as in the given constructor), so that the check can replace them by stand-ins")
            return None
        for key, (double, size) in swap.items():
            parts[key] = DOUBLES[double](size)
    want = inputs["params"]
    if want:
        params = getattr(layer, "params", None)
        if not (hasattr(params, "keys") and hasattr(params, "__setitem__") and hasattr(params, "__getitem__")):
            rec["param_error"] = f"has no params dict (got {type(params).__name__})"
            return None
        rec["param_shapes"] = {str(k): list(np.shape(params[k])) for k in list(params.keys())}
        if set(rec["param_shapes"]) != set(want) or \
                any(tuple(rec["param_shapes"][k]) != np.shape(v) for k, v in want.items()):
            return None
        for key, value in want.items():
            params[key] = np.array(value, dtype="float64")
    return layer, doubles


def _record_layer(student: Any, inputs: dict) -> dict:
    rec: dict[str, Any] = {"name": _name(student), "build_error": None, "param_error": None, "param_shapes": None,
                           "cases": []}
    for case in inputs["cases"]:
        built = _build(student, inputs, rec)
        if built is None:
            break
        layer, doubles = built
        ins, kw = copy.deepcopy(case["forward"]), copy.deepcopy(case.get("fkw", {}))
        got: dict[str, Any] = {"forward": None, "backward": None, "grads": {}, "attrs": {}, "mutated": [],
                               "double_grads": []}
        rec["cases"].append(got)
        out = call(layer.forward, *ins, **kw)
        got["forward"] = out.as_record(plain)
        got["mutated"] = [i for i, (a, b) in enumerate(zip(ins, case["forward"], strict=True))
                          if isinstance(b, np.ndarray) and not np.array_equal(a, b)]
        for attr in case.get("attrs", []):
            got["attrs"][attr] = plain(getattr(layer, attr, None))
        if out.error:
            continue
        dys = [np.array(d) for d in case["backward"]]
        back = call(layer.backward, *dys)
        got["backward"] = back.as_record(plain)
        if back.error:
            continue
        grads = getattr(layer, "grads", {})
        if hasattr(grads, "keys") and hasattr(grads, "__getitem__"):
            got["grads"] = {str(k): plain(grads[k]) for k in list(grads.keys())}
        got["double_grads"] = [plain(d.grads.get("W")) for d in doubles]
    return rec


record_rnn_step = record_bptt = record_bidirectional = record_embedding = _record_layer
record_time_loss = record_attention = record_mha = record_encoder_layer = _record_layer


# --------------------------------------------------------------------------- functions


def record_clip(student: Any, inputs: dict) -> dict:
    """``clip(grads, max_norm)`` on each case: its return value and the dict afterwards (updated in place)."""
    rec: dict[str, Any] = {"name": _name(student), "cases": []}
    for case in inputs["cases"]:
        grads = {k: np.array(v) for k, v in case["grads"].items()}
        out = call(student, grads, case["max_norm"])
        rec["cases"].append({"out": out.as_record(plain),
                             "after": {str(k): plain(v) for k, v in grads.items()},
                             "same_keys": sorted(map(str, grads)) == sorted(case["grads"])})
    return rec


def record_sdpa(student: Any, inputs: dict) -> dict:
    """``attention(q, k, v, causal=...)`` -> (out, weights) on each case."""
    rec: dict[str, Any] = {"name": _name(student), "cases": []}
    for case in inputs["cases"]:
        args = [np.array(a) for a in case["args"]]
        out = call(student, *args, causal=case["causal"])
        rec["cases"].append({"out": out.as_record(plain),
                             "mutated": any(not np.array_equal(a, b) for a, b in zip(args, case["args"], strict=True))})
    return rec


# --------------------------------------------------------------------------- closing experiments


def _closing(student: Any, inputs: dict, predict: str) -> dict:
    """Train with the plan's training data and options (the test targets never reach the kernel), then predict
    the test inputs with the model's ``predict`` method: only the predicted ids are recorded. The notebook's
    own classes named in ``inputs["earlier"]`` are the grader's correct ones meanwhile (recorded as ``standins``)."""
    rec: dict[str, Any] = {"name": _name(student), "error": None, "warnings": [], "scores": None, "standins": []}
    with swapped(getattr(student, "__globals__", None), STANDINS, inputs.get("earlier", []),
                 own_only=getattr(student, "__module__", None)) as standins:
        rec["standins"] = standins
        return _train_and_predict(student, inputs, predict, rec)


def _train_and_predict(student: Any, inputs: dict, predict: str, rec: dict) -> dict:
    trained = call(student, *[np.array(a) for a in inputs["train"]], **copy.deepcopy(inputs["options"]))
    rec["warnings"] = list(trained.warnings)
    if trained.error:
        rec["error"] = f"training raised {trained.error}"
    if trained.error or trained.value is None:
        return rec
    fn = getattr(trained.value, predict, None)
    if not callable(fn):
        rec["error"] = f"the returned model has no {predict}() method (got {type(trained.value).__name__})"
        return rec
    out = call(fn, np.array(inputs["test_x"]))
    rec["warnings"] += out.warnings
    if out.error:
        rec["error"] = f"{predict} on the test inputs raised {out.error}"
        return rec
    rec["scores"] = plain(out.value)
    if isinstance(rec["scores"], np.ndarray) and rec["scores"].ndim == 3:
        rec["scores"] = rec["scores"].argmax(axis=-1)
    return rec


def record_next_symbol(student: Any, inputs: dict) -> dict:
    """train(xs, ts, **options) -> model; then model.forward(test_x): the predicted ids (next symbol, or per
    position for sequence_training)."""
    return _closing(student, inputs, "forward")


def record_seq2seq(student: Any, inputs: dict) -> dict:
    """train(questions, answers, **options) -> model; then model.generate(test_x) -> ids (N, L)."""
    return _closing(student, inputs, "generate")


record_sequence_training = record_next_symbol
