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

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from grader.kernel.records._common import array_or_text, origin, swapped, trace
from grader.kernel.records.core import record_layer
from grader.kernel.student import call

# --------------------------------------------------------------------------- plain data


def _data(v: Any) -> Any:
    """Plain data of a result: lists for tuples and lists, Python numbers, NumPy copies of other numeric
    array-likes (:func:`array_or_text`), a short text saying what ``v`` is instead."""
    if isinstance(v, (tuple, list)) and len(v) <= 64:
        return [_data(x) for x in v]
    if isinstance(v, (bool, np.bool_, int, float, np.integer, np.floating)):
        return bool(v) if isinstance(v, (bool, np.bool_)) else np.asarray(v).item()
    a = array_or_text(v)
    return a if not isinstance(a, np.ndarray) or a.dtype.kind in "biuf" else f"an array of dtype {a.dtype}"


# --------------------------------------------------------------------------- the grader's own layers


def _pad(x: np.ndarray, p: int, value: float = 0.0) -> np.ndarray:
    return x if p == 0 else np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=value)


def out_size(h: int, w: int, kh: int, kw: int, stride: int, pad: int) -> tuple[int, int]:
    """(OH, OW) = ((H + 2 pad − KH) // stride + 1, (W + 2 pad − KW) // stride + 1)."""
    return (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1


def k_im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """The grader's im2col: col[(n, p, q), (c, i, j)] = x_pad[n, c, p s + i, q s + j]."""
    n, c, h, w = x.shape
    oh, ow = out_size(h, w, kh, kw, stride, pad)
    win = sliding_window_view(_pad(np.asarray(x), pad), (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return win[:, :, :oh, :ow].transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)


def k_col2im(col: np.ndarray, x_shape: tuple, kh: int, kw: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """The grader's col2im: dx_pad[n, c, p s + i, q s + j] += col[(n, p, q), (c, i, j)], padding cut off."""
    n, c, h, w = x_shape
    oh, ow = out_size(h, w, kh, kw, stride, pad)
    cols = np.asarray(col).reshape(n, oh, ow, c, kh, kw)
    dx = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride] += \
                cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dx[:, :, pad:pad + h, pad:pad + w]


class _KLayer:
    """One of the grader's layers: ``config`` = [its name, *its arguments] for the architecture check."""

    def __init__(self, *args: int) -> None:
        self.config, self.params, self.grads = [type(self).__name__[1:], *args], {}, {}


class KConv2D(_KLayer):
    """The grader's Conv2D (float64): y = b + Σ W x_pad over each window (im2col, then one matrix product)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 rng: Any = None) -> None:
        super().__init__(int(in_channels), int(out_channels), int(kernel_size), int(stride), int(padding))
        c_in, c_out, self.k, self.s, self.p = self.config[1:]
        self.params = {"W": np.random.default_rng(rng).normal(0.0, np.sqrt(2.0 / (c_in * self.k * self.k)),
                                                              (c_out, c_in, self.k, self.k)), "b": np.zeros(c_out)}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x_shape = x.shape
        oh, ow = out_size(x.shape[2], x.shape[3], self.k, self.k, self.s, self.p)
        self.col = k_im2col(np.asarray(x, dtype="float64"), self.k, self.k, self.s, self.p)   # (N·OH·OW, C·K·K)
        y = self.col @ self.params["W"].reshape(len(self.params["W"]), -1).T + self.params["b"]
        return np.ascontiguousarray(y.reshape(x.shape[0], oh, ow, -1).transpose(0, 3, 1, 2))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        w = self.params["W"]
        dy_mat = dy.transpose(0, 2, 3, 1).reshape(-1, len(w))                                 # (N·OH·OW, C_out)
        self.grads["W"] = (dy_mat.T @ self.col).reshape(w.shape)
        self.grads["b"] = dy.sum(axis=(0, 2, 3))
        return k_col2im(dy_mat @ w.reshape(len(w), -1), self.x_shape, self.k, self.k, self.s, self.p)


class KMaxPool2D(_KLayer):
    """The grader's max-pooling (stride = kernel by default); the gradient goes to the first argmax."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None:
        super().__init__(int(kernel_size), int(kernel_size if stride is None else stride), int(padding))
        self.k, self.s, self.p = self.config[1:]

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x_shape = x.shape
        x_pad = _pad(np.asarray(x, dtype="float64"), self.p, -np.inf)
        win = sliding_window_view(x_pad, (self.k, self.k), axis=(2, 3))[:, :, ::self.s, ::self.s]  # (N, C, OH, OW, ·)
        self.arg = win.reshape(*win.shape[:4], -1).argmax(axis=-1)           # the first argmax of each window
        return win.max(axis=(4, 5))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        n, c, h, w = self.x_shape
        oh, ow = self.arg.shape[2:]
        dx = np.zeros((n, c, h + 2 * self.p, w + 2 * self.p))
        rows = np.arange(oh)[:, None] * self.s + self.arg // self.k
        cols = np.arange(ow) * self.s + self.arg % self.k
        np.add.at(dx, (np.arange(n)[:, None, None, None], np.arange(c)[:, None, None], rows, cols), dy)
        return dx[:, :, self.p:self.p + h, self.p:self.p + w]


class KReLU(_KLayer):
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x > 0
        return np.where(self.mask, x, 0.0)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return np.where(self.mask, dy, 0.0)


class KFlatten(_KLayer):
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shape = x.shape
        return np.reshape(x, (x.shape[0], -1))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return np.reshape(dy, self.shape)


class KAffine(_KLayer):
    def __init__(self, n_in: int, n_out: int, rng: Any = None) -> None:
        super().__init__(int(n_in), int(n_out))
        r = np.random.default_rng(rng)
        self.params = {"W": r.normal(0.0, np.sqrt(2.0 / n_in), (n_in, n_out)), "b": np.zeros(n_out)}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.grads["W"] = self.x.T @ dy
        self.grads["b"] = dy.sum(axis=0)
        return dy @ self.params["W"].T


#: What the grader hands to ``layers=`` of a network exercise (a layer's config is [its name, *its arguments]).
LAYERS = {"Conv2D": KConv2D, "MaxPool2D": KMaxPool2D, "ReLU": KReLU, "Flatten": KFlatten, "Affine": KAffine}


def _load(layers: list, params: list) -> None:
    """The plan's parameters, one dict per layer, copied into the layers' params."""
    for layer, p in zip(layers, params, strict=True):
        for key, value in p.items():
            layer.params[key] = np.array(value, dtype="float64")


class KNet:
    """A chain of the grader's layers with the network interface of the notebook (flat params/grads)."""

    def __init__(self, configs: list, params: list) -> None:
        self.layers = [LAYERS[c[0]](*c[1:]) for c in configs]
        _load(self.layers, params)

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


#: Earlier exercises a layer may call by name, replaced by the grader's own while that layer is checked.
HELPERS = {"im2col": k_im2col, "col2im": k_col2im}




# --------------------------------------------------------------------------- functions


def _cases(student: Any, inputs: dict, run: Any) -> dict:
    """``run(case)`` -> (the arrays handed to the student by their names in the case, the call's Outcome), for
    every case; the results as plain data, whether the student changed those arrays, calls into dlcore's reference."""
    info, cases = origin(student), []
    for case in inputs["cases"]:
        with trace(inputs.get("reference"), info["calls_reference"]):
            given, out = run(case)
        cases.append({"value": None if out.error else _data(out.value), "error": out.error,
                      "warnings": list(out.warnings),
                      "mutated": not all(np.array_equal(a, case[name]) for name, a in given.items())})
    return {"origin": info, "cases": cases}


def record_filter2d(student: Any, inputs: dict) -> dict:
    """The by-hand 2-D filter (correlation or convolution) on each (image, kernel) pair."""
    def run(case: dict) -> tuple:
        x, h = np.array(case["x"]), np.array(case["h"])
        return {"x": x, "h": h}, call(student, x, h)

    return _cases(student, inputs, run)


def record_im2col(student: Any, inputs: dict) -> dict:
    def run(case: dict) -> tuple:
        x = np.array(case["x"])
        return {"x": x}, call(student, x, case["kh"], case["kw"], stride=case["stride"], pad=case["pad"])

    return _cases(student, inputs, run)


def record_col2im(student: Any, inputs: dict) -> dict:
    def run(case: dict) -> tuple:
        col = np.array(case["col"])
        return {"col": col}, call(student, col, tuple(case["x_shape"]), case["kh"], case["kw"],
                                  stride=case["stride"], pad=case["pad"])

    return _cases(student, inputs, run)


def record_translation_invariance(student: Any, inputs: dict) -> dict:
    """The student's measure, with the grader's max-pooling as ``pool``."""
    def run(case: dict) -> tuple:
        x = np.array(case["x"])
        return {"x": x}, call(student, x, KMaxPool2D(case["pool"]).forward, shift=case["shift"])

    return _cases(student, inputs, run)


# --------------------------------------------------------------------------- layers


def record_cnn_layer(student: Any, inputs: dict) -> dict:
    """A layer class on the plan's parameters and inputs (grader.kernel.records.core's layer record), run with the
    grader's im2col/col2im in place of the student's; ``warnings``: those its forward and backward raised."""
    hits: list = []
    with swapped(getattr(getattr(student, "forward", None), "__globals__", None), HELPERS,
                 inputs.get("helpers", [])) as used, trace(inputs.get("reference"), hits):
        rec = record_layer(student, {**inputs, "is_loss": False})
    rec["provenance"] = {**origin(student), "calls_reference": hits}
    rec["warnings"] = list(dict.fromkeys(w for case in rec["cases"] for w in case["warnings"]))
    rec["substituted"] = used
    return rec


# --------------------------------------------------------------------------- networks


def _configs(layers: Any) -> tuple[list, str | None]:
    """The configs of a network's layers (the grader's layers carry theirs), or why they cannot be read."""
    if not isinstance(layers, (list, tuple)):
        return [], f"its `layers` is {type(layers).__name__}, expected a list of layers"
    for i, layer in enumerate(layers):
        if not isinstance(getattr(layer, "config", None), list):
            return [], (f"layer {i} is a {type(layer).__name__}, not one built from `layers` (build every layer "
                        "with L[\"Conv2D\"](...), L[\"ReLU\"](), ... so the grader can use its own)")
    return [list(layer.config) for layer in layers], None


def _run_network(net: Any, layers: list, params: list, x: np.ndarray, dy: np.ndarray) -> dict:
    """Load the plan's parameters into the layers, run forward and backward, read every gradient."""
    got: dict[str, Any] = {"forward": None, "forward_error": None, "backward": None, "backward_error": None,
                           "grads": [], "warnings": []}
    _load(layers, params)
    for step, fn, arg in (("forward", net.forward, x), ("backward", net.backward, dy)):
        out = call(fn, np.array(arg))
        got["warnings"] += out.warnings
        if out.error:
            got[f"{step}_error"] = out.error
            return got
        got[step] = _data(out.value)
    got["grads"] = [{k: _data(v) for k, v in layer.grads.items()} for layer in layers]
    return got


def record_cnn_network(student: Any, inputs: dict) -> dict:
    """A network built with the grader's layers (LeNet, or the residual block: the attributes ``inputs["parts"]``
    hold its layers, else the list ``net.layers``): its layers' configs, then forward and backward on the plan's
    parameters and inputs."""
    rec: dict[str, Any] = {"origin": origin(student), "build_error": None, "configs": [], "layers_error": None,
                           "cases": []}
    with trace(inputs.get("reference"), rec["origin"]["calls_reference"]):
        built = call(student, *inputs.get("args", ()), layers=dict(LAYERS), **inputs["kwargs"])
        if built.error:
            rec["build_error"] = built.error
            return rec
        net, parts = built.value, inputs.get("parts")
        layers = getattr(net, "layers", None) if parts is None else [getattr(net, name, None) for name in parts]
        rec["configs"], rec["layers_error"] = _configs(layers)
        if parts and any(layer is None for layer in layers):
            rec["layers_error"] = f"the block must keep its two convolutions as self.{parts[0]} and self.{parts[1]}"
        if rec["layers_error"] is None and rec["configs"] == inputs["configs"]:
            rec["cases"] = [_run_network(net, layers, inputs["params"], c["x"], c["dy"]) for c in inputs["cases"]]
    return rec


record_residual_block = record_cnn_network


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
