"""Chapter 4 (convolutional networks): record functions, kernel side (stdlib and NumPy only).

Each ``record_<kind>(student, inputs)`` runs the student's object on a plan's inputs and returns plain
data; every student call goes through :func:`grader.kernel.student.call`, so exceptions and NumPy
warnings become data that the judge reports.

The exercises that assemble earlier ones (LeNet, the residual block, the training loop) are run here
with the grader's own layers (:data:`LAYERS`: NumPy, float64, the formulas below), so that a mistake in
the student's Conv2D or pooling costs only its own exercise. The judge compares what these layers gave
with dlcore's reference on the same parameters, so a disagreement between the two never passes.

    conv:      y[n, o, p, q] = b[o] + Σ_{c,i,j} W[o, c, i, j] x_pad[n, c, p s + i, q s + j]
    max-pool:  y[n, c, p, q] = max_{i,j} x_pad[n, c, p s + i, q s + j]   (gradient to the first argmax)
    affine:    Y = X W + b
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from grader.kernel.student import call

# --------------------------------------------------------------------------- plain data


def _data(v: Any) -> Any:
    """A NumPy copy of an array-like, a plain number, or a short text saying what ``v`` is instead."""
    if v is None:
        return None
    if isinstance(v, np.ndarray):
        return v.copy() if v.dtype.kind in "biuf" else f"an array of dtype {v.dtype}"
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return np.asarray(v).item()
    if isinstance(v, (tuple, list)) and len(v) <= 64:
        return [_data(x) for x in v]
    try:
        a = np.asarray(v)
    except Exception:
        return f"a {type(v).__name__}"
    return a.copy() if a.dtype.kind in "biuf" else f"a {type(v).__name__}"


def _outcome(out: Any) -> dict:
    """{"value", "error", "warnings"} of one student call, the value as plain data."""
    return {"value": None if out.error else _data(out.value), "error": out.error, "warnings": list(out.warnings)}


def origin(student: Any) -> dict:
    """Where the student's code comes from (the keys grader.checks' delegation test reads)."""
    info: dict[str, Any] = {"name": str(getattr(student, "__name__", type(student).__name__))[:80],
                            "module": str(getattr(student, "__module__", "") or "")[:200], "is_reference": False,
                            "subclasses_reference": False, "dlcore_bases": [], "dlcore_code": [],
                            "calls_reference": []}
    codes = []
    if inspect.isclass(student):
        for klass in student.__mro__[1:]:
            qual = f"{klass.__module__}.{klass.__qualname__}"
            if str(klass.__module__).startswith("dlcore") and qual not in ("dlcore.nn.base.Layer",
                                                                             "dlcore.nn.base.Loss"):
                info["dlcore_bases"].append(qual)
        for klass in student.__mro__:
            if klass is object:
                continue
            for value in vars(klass).values():
                fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
                if hasattr(fn, "__code__"):
                    codes.append(fn.__code__)
    elif hasattr(student, "__code__"):
        codes.append(student.__code__)
    for code in codes:
        parts = os.path.abspath(code.co_filename).split(os.sep)
        if "dlcore" in parts[:-1]:
            info["dlcore_code"].append(f"{code.co_name} (from dlcore/{os.path.basename(code.co_filename)})")
    return info


class Trace:
    """Within ``with``: record calls into dlcore's code named ``reference`` (its functions, or the methods of its
    class), so that a solution that hands the work to dlcore's reference is seen (re-entrant, restores the hook)."""

    def __init__(self, reference: str | None, hits: list) -> None:
        self.reference, self.hits, self.old = reference, hits, None

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        qual = getattr(code, "co_qualname", code.co_name)
        if (qual.split(".")[0] == self.reference or code.co_name == self.reference) \
                and "dlcore" in os.path.abspath(code.co_filename).split(os.sep)[:-1] and qual not in self.hits:
            self.hits.append(qual)

    def __enter__(self) -> Trace:
        if self.reference:
            self.old = sys.getprofile()
            sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.reference:
            sys.setprofile(self.old)


# --------------------------------------------------------------------------- the grader's own layers


def _pad(x: np.ndarray, p: int, value: float = 0.0) -> np.ndarray:
    return x if p == 0 else np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=value)


def _windows(x_pad: np.ndarray, k: int, s: int) -> np.ndarray:
    """(N, C, OH, OW, K, K) view: entry [n, c, p, q, i, j] = x_pad[n, c, p s + i, q s + j]."""
    return sliding_window_view(x_pad, (k, k), axis=(2, 3))[:, :, ::s, ::s]


class KConv2D:
    """The grader's Conv2D (float64): y = b + Σ W x_pad over each window; see the module docstring."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 rng: Any = None) -> None:
        self.config = ["Conv2D", int(in_channels), int(out_channels), int(kernel_size), int(stride), int(padding)]
        self.k, self.s, self.p = int(kernel_size), int(stride), int(padding)
        r = np.random.default_rng(rng)
        fan_in = in_channels * self.k * self.k
        self.params = {"W": r.normal(0.0, np.sqrt(2.0 / fan_in), (out_channels, in_channels, self.k, self.k)),
                       "b": np.zeros(out_channels)}
        self.grads: dict = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x_shape = x.shape
        n = x.shape[0]
        win = _windows(_pad(np.asarray(x, dtype="float64"), self.p), self.k, self.s)     # (N, C, OH, OW, K, K)
        _, c, oh, ow, k, _ = win.shape
        self.col = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * k * k)     # im2col (a copy)
        w_mat = self.params["W"].reshape(self.params["W"].shape[0], -1)
        y = self.col @ w_mat.T + self.params["b"]
        return np.ascontiguousarray(y.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        n, c, h, w = self.x_shape
        c_out, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
        k, s, p = self.k, self.s, self.p
        w_mat = self.params["W"].reshape(c_out, -1)
        dy_mat = dy.transpose(0, 2, 3, 1).reshape(-1, c_out)
        self.grads["W"] = (dy_mat.T @ self.col).reshape(self.params["W"].shape)
        self.grads["b"] = dy.sum(axis=(0, 2, 3))
        dcol = (dy_mat @ w_mat).reshape(n, oh, ow, c, k, k)
        dx = np.zeros((n, c, h + 2 * p, w + 2 * p))
        for i in range(k):
            for j in range(k):
                dx[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s] += dcol[:, :, :, :, i, j].transpose(
                    0, 3, 1, 2)
        return dx[:, :, p:p + h, p:p + w]


class KMaxPool2D:
    """The grader's max-pooling (stride = kernel by default); the gradient goes to the first argmax."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None:
        self.k = int(kernel_size)
        self.s = self.k if stride is None else int(stride)
        self.p = int(padding)
        self.config = ["MaxPool2D", self.k, self.s, self.p]
        self.params: dict = {}
        self.grads: dict = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x_shape = x.shape
        self.x_pad = _pad(np.asarray(x, dtype="float64"), self.p, -np.inf)
        n, c, hp, wp = self.x_pad.shape
        oh, ow = (hp - self.k) // self.s + 1, (wp - self.k) // self.s + 1
        y = np.full((n, c, oh, ow), -np.inf)
        for i in range(self.k):
            for j in range(self.k):
                rows, cols = slice(i, i + self.s * (oh - 1) + 1, self.s), slice(j, j + self.s * (ow - 1) + 1, self.s)
                y = np.maximum(y, self.x_pad[:, :, rows, cols])
        self.y = y
        return y.copy()

    def backward(self, dy: np.ndarray) -> np.ndarray:
        n, c, h, w = self.x_shape
        _, _, oh, ow = dy.shape
        k, s, p = self.k, self.s, self.p
        dx = np.zeros_like(self.x_pad)
        left = np.array(dy, dtype="float64")
        for i in range(k):
            for j in range(k):
                rows, cols = slice(i, i + s * (oh - 1) + 1, s), slice(j, j + s * (ow - 1) + 1, s)
                share = left * (self.x_pad[:, :, rows, cols] == self.y)
                dx[:, :, rows, cols] += share
                left = left - share
        return dx[:, :, p:p + h, p:p + w]


class KReLU:
    def __init__(self) -> None:
        self.config = ["ReLU"]
        self.params: dict = {}
        self.grads: dict = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x > 0
        return np.where(self.mask, x, 0.0)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return np.where(self.mask, dy, 0.0)


class KFlatten:
    def __init__(self) -> None:
        self.config = ["Flatten"]
        self.params: dict = {}
        self.grads: dict = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shape = x.shape
        return np.reshape(x, (x.shape[0], -1))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return np.reshape(dy, self.shape)


class KAffine:
    def __init__(self, n_in: int, n_out: int, rng: Any = None) -> None:
        self.config = ["Affine", int(n_in), int(n_out)]
        r = np.random.default_rng(rng)
        self.params = {"W": r.normal(0.0, np.sqrt(2.0 / n_in), (n_in, n_out)), "b": np.zeros(n_out)}
        self.grads: dict = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.grads["W"] = self.x.T @ dy
        self.grads["b"] = dy.sum(axis=0)
        return dy @ self.params["W"].T


#: What the grader hands to ``layers=`` of a network exercise.
LAYERS = {"Conv2D": KConv2D, "MaxPool2D": KMaxPool2D, "ReLU": KReLU, "Flatten": KFlatten, "Affine": KAffine}
_BUILD = {"Conv2D": lambda c: KConv2D(*c[1:]), "MaxPool2D": lambda c: KMaxPool2D(*c[1:]),
          "ReLU": lambda c: KReLU(), "Flatten": lambda c: KFlatten(), "Affine": lambda c: KAffine(*c[1:])}


class KNet:
    """A chain of the grader's layers with the network interface of the notebook (flat params/grads)."""

    def __init__(self, configs: list, params: list) -> None:
        self.layers = [_BUILD[c[0]](c) for c in configs]
        for layer, p in zip(self.layers, params, strict=True):
            for key, value in p.items():
                layer.params[key] = np.array(value, dtype="float64")

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    predict = forward

    def backward(self, dout: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    @property
    def params(self) -> dict:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    @property
    def grads(self) -> dict:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}


def k_im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """The grader's im2col: col[(n, p, q), (c, i, j)] = x_pad[n, c, p s + i, q s + j]."""
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    win = sliding_window_view(_pad(np.asarray(x), pad), (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return win[:, :, :oh, :ow].transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)


def k_col2im(col: np.ndarray, x_shape: tuple, kh: int, kw: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """The grader's col2im: dx_pad[n, c, p s + i, q s + j] += col[(n, p, q), (c, i, j)], padding cut off."""
    n, c, h, w = x_shape
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    cols = np.asarray(col).reshape(n, oh, ow, c, kh, kw)
    dx = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride] += \
                cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dx[:, :, pad:pad + h, pad:pad + w]


#: Earlier exercises a layer may call by name, replaced by the grader's own while that layer is checked.
HELPERS = {"im2col": k_im2col, "col2im": k_col2im}


class _Substituted:
    """Within ``with``: the names in ``names`` of the student's module point to the grader's functions."""

    def __init__(self, student: Any, names: list) -> None:
        fn = getattr(student, "forward", None)
        self.namespace = getattr(fn, "__globals__", None) if fn is not None else None
        self.names = [n for n in names if n in HELPERS]
        self.saved: dict = {}
        self.used: list = []

    def __enter__(self) -> list:
        if isinstance(self.namespace, dict):
            for name in self.names:
                if name in self.namespace:
                    self.saved[name] = self.namespace[name]
                    self.namespace[name] = HELPERS[name]
                    self.used.append(name)
        return self.used

    def __exit__(self, *exc: Any) -> None:
        for name, value in self.saved.items():
            self.namespace[name] = value


# --------------------------------------------------------------------------- functions


def record_filter2d(student: Any, inputs: dict) -> dict:
    """The by-hand 2-D filter (correlation or convolution) on each (image, kernel) pair."""
    cases = []
    for case in inputs["cases"]:
        x, h = np.array(case["x"]), np.array(case["h"])
        out = call(student, x, h)
        rec = _outcome(out)
        rec["mutated"] = not (np.array_equal(x, case["x"]) and np.array_equal(h, case["h"]))
        cases.append(rec)
    return {"origin": origin(student), "cases": cases}


def record_im2col(student: Any, inputs: dict) -> dict:
    cases, info = [], origin(student)
    for case in inputs["cases"]:
        x = np.array(case["x"])
        with Trace(inputs.get("reference"), info["calls_reference"]):
            out = call(student, x, case["kh"], case["kw"], stride=case["stride"], pad=case["pad"])
        rec = _outcome(out)
        rec["mutated"] = not np.array_equal(x, case["x"])
        cases.append(rec)
    return {"origin": info, "cases": cases}


def record_col2im(student: Any, inputs: dict) -> dict:
    cases, info = [], origin(student)
    for case in inputs["cases"]:
        col = np.array(case["col"])
        with Trace(inputs.get("reference"), info["calls_reference"]):
            out = call(student, col, tuple(case["x_shape"]), case["kh"], case["kw"], stride=case["stride"],
                       pad=case["pad"])
        rec = _outcome(out)
        rec["mutated"] = not np.array_equal(col, case["col"])
        cases.append(rec)
    return {"origin": info, "cases": cases}


def record_translation_invariance(student: Any, inputs: dict) -> dict:
    """The student's measure, with the grader's max-pooling as ``pool``."""
    cases = []
    for case in inputs["cases"]:
        x = np.array(case["x"])
        pool = KMaxPool2D(case["pool"]).forward
        out = call(student, x, pool, shift=case["shift"])
        rec = _outcome(out)
        rec["mutated"] = not np.array_equal(x, case["x"])
        cases.append(rec)
    return {"origin": origin(student), "cases": cases}


# --------------------------------------------------------------------------- layers


def record_cnn_layer(student: Any, inputs: dict) -> dict:
    """A layer class on the plan's parameters and inputs (the fields of grader.checks.LayerRecord)."""
    hits: list = []
    with _Substituted(student, inputs.get("helpers", [])) as used, Trace(inputs.get("reference"), hits):
        rec = _record_layer(student, inputs)
    rec["provenance"]["calls_reference"] = hits
    rec["substituted"] = list(used)
    return rec


def _record_layer(student: Any, inputs: dict) -> dict:
    rec: dict[str, Any] = {"provenance": origin(student), "build_error": None, "param_shapes": None,
                           "param_error": None, "cases": [], "cached_attrs": [], "warnings": []}
    plan_params = inputs["params"]
    for ci, case in enumerate(inputs["cases"]):
        got: dict[str, Any] = {"forward": None, "forward_error": None, "mutated": [], "backward": None,
                               "backward_error": None, "dy_mutated": False, "grads": {}}
        rec["cases"].append(got)
        built = call(student, *inputs["args"], **inputs["kwargs"])
        if built.error:
            rec["build_error"] = built.error
            break
        layer = built.value
        params = getattr(layer, "params", None)
        if plan_params:
            if not isinstance(params, dict):
                rec["param_error"] = "has no params dict (self.params = {name: array})"
                break
            rec["param_shapes"] = {str(k): list(np.shape(v)) for k, v in params.items()}
            if set(params) != set(plan_params) or any(
                    tuple(np.shape(params[k])) != np.shape(plan_params[k]) for k in plan_params):
                break
            for key, value in plan_params.items():
                params[key] = np.array(value)
            if ci == 0:
                for attr, value in vars(layer).items():
                    if isinstance(value, np.ndarray) and attr not in ("params", "grads") and any(
                            value.shape == np.shape(p) and value is not params[k] for k, p in plan_params.items()):
                        rec["cached_attrs"].append(attr)
        ins = [np.array(a) for a in case["inputs"]]
        fwd = call(layer.forward, *ins)
        rec["warnings"] += [w for w in fwd.warnings if w not in rec["warnings"]]
        if fwd.error:
            got["forward_error"] = fwd.error
            continue
        y = _data(fwd.value)
        got["forward"] = y if isinstance(y, np.ndarray) else f"{type(fwd.value).__name__}"
        got["mutated"] = [i for i, (a, b) in enumerate(zip(ins, case["inputs"], strict=True))
                          if a.shape != np.shape(b) or not np.array_equal(a, b)]
        dy = np.array(case["dy"])
        bwd = call(layer.backward, dy)
        rec["warnings"] += [w for w in bwd.warnings if w not in rec["warnings"]]
        if bwd.error:
            got["backward_error"] = bwd.error
            continue
        got["dy_mutated"] = not np.array_equal(dy, case["dy"])
        dx = bwd.value if isinstance(bwd.value, tuple) else (bwd.value,)
        got["backward"] = [d if isinstance(d, np.ndarray) else None for d in (_data(v) for v in dx)]
        grads = getattr(layer, "grads", None) or {}
        got["grads"] = {str(k): d for k, d in ((k, _data(v)) for k, v in dict(grads).items())
                        if isinstance(d, np.ndarray)}
    return rec


# --------------------------------------------------------------------------- networks


def _configs(layers: Any) -> tuple[list, str | None]:
    """The configs of a network's layers (the grader's layers carry theirs), or why they cannot be read."""
    if not isinstance(layers, (list, tuple)):
        return [], f"its `layers` is {type(layers).__name__}, expected a list of layers"
    configs = []
    for i, layer in enumerate(layers):
        config = getattr(layer, "config", None)
        if not isinstance(config, list):
            return [], (f"layer {i} is a {type(layer).__name__}, not one built from `layers` (build every layer "
                        "with L[\"Conv2D\"](...), L[\"ReLU\"](), ... so the grader can use its own)")
        configs.append(list(config))
    return configs, None


def _run_network(net: Any, layers: list, params: list, x: np.ndarray, dy: np.ndarray) -> dict:
    """Load the plan's parameters into the layers, run forward and backward, read every gradient."""
    got: dict[str, Any] = {"forward": None, "forward_error": None, "backward": None, "backward_error": None,
                           "grads": [], "warnings": []}
    for layer, p in zip(layers, params, strict=True):
        for key, value in p.items():
            layer.params[key] = np.array(value)
    fwd = call(net.forward, np.array(x))
    got["warnings"] += fwd.warnings
    if fwd.error:
        got["forward_error"] = fwd.error
        return got
    got["forward"] = _data(fwd.value)
    bwd = call(net.backward, np.array(dy))
    got["warnings"] += bwd.warnings
    if bwd.error:
        got["backward_error"] = bwd.error
        return got
    got["backward"] = _data(bwd.value)
    got["grads"] = [{k: _data(v) for k, v in layer.grads.items()} for layer in layers]
    return got


def record_cnn_network(student: Any, inputs: dict) -> dict:
    """A network class (LeNet) built with the grader's layers: its architecture, forward and backward."""
    rec: dict[str, Any] = {"origin": origin(student), "build_error": None, "configs": [], "layers_error": None,
                           "cases": []}
    built = call(student, layers=dict(LAYERS), **inputs["kwargs"])
    if built.error:
        rec["build_error"] = built.error
        return rec
    net = built.value
    configs, problem = _configs(getattr(net, "layers", None))
    rec["configs"], rec["layers_error"] = configs, problem
    if problem or configs != inputs["configs"]:
        return rec
    for case in inputs["cases"]:
        rec["cases"].append(_run_network(net, net.layers, inputs["params"], case["x"], case["dy"]))
    return rec


def record_residual_block(student: Any, inputs: dict) -> dict:
    """A residual block built with the grader's layers: conv1 and conv2, forward and backward."""
    rec: dict[str, Any] = {"origin": origin(student), "build_error": None, "configs": [], "layers_error": None,
                           "cases": []}
    with Trace(inputs.get("reference"), rec["origin"]["calls_reference"]):
        built = call(student, *inputs["args"], layers=dict(LAYERS), rng=0)
    if built.error:
        rec["build_error"] = built.error
        return rec
    block = built.value
    convs = [getattr(block, name, None) for name in ("conv1", "conv2")]
    configs, problem = _configs(convs)
    if any(c is None for c in convs):
        problem = "the block must keep its two convolutions as self.conv1 and self.conv2"
    rec["configs"], rec["layers_error"] = configs, problem
    if problem or configs != inputs["configs"]:
        return rec
    with Trace(inputs.get("reference"), rec["origin"]["calls_reference"]):
        for case in inputs["cases"]:
            rec["cases"].append(_run_network(block, convs, inputs["params"], case["x"], case["dy"]))
    return rec


def record_cnn_training(student: Any, inputs: dict) -> dict:
    """The student's training loop on the grader's network and the plan's training data.

    The kernel gets the training set and the test INPUTS only; it returns the predicted test labels,
    the judge (outside) computes the accuracy with the labels it kept.
    """
    net = KNet(inputs["configs"], inputs["params"])
    out = call(student, net, np.array(inputs["x_train"]), np.array(inputs["t_train"]), **inputs["kwargs"])
    rec: dict[str, Any] = {"origin": origin(student), "error": out.error, "warnings": list(out.warnings),
                           "history": None, "predicted": None}
    if out.error:
        return rec
    rec["history"] = _data(out.value)
    scores = call(net.forward, np.array(inputs["x_test"]))
    if scores.error:
        rec["error"] = f"the trained network could not predict: {scores.error}"
        return rec
    s = _data(scores.value)
    if isinstance(s, np.ndarray) and s.ndim == 2:
        rec["predicted"] = np.argmax(s, axis=1).astype("int64")
    return rec
