"""Records of chapters 1–2's kinds: gate weights, perceptron training, the closing experiments, a network.

Each runs the student's objects on the plan's inputs only (never labels of a test set, never expected
values) and returns plain data; every call of student code goes through ``student.call``. The inputs arrive
freshly decoded for each record, so a value used once goes to the student's code as it is.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from grader.kernel.records._common import swapped
from grader.kernel.student import call, plain, provenance

MAX_CALLS = 20_000


def record_gate_weights(student: Any, inputs: dict) -> dict:
    """The (w, theta) the student chose for each named gate (a dict like GATES)."""
    rec: dict[str, Any] = {"provenance": provenance(student), "weights": {}}
    for name in inputs["gates"]:
        got = call(lambda n=name: student[n])
        rec["weights"][name] = {"value": plain(got.value), "error": got.error}
    return rec


def record_perceptron_training(student: Any, inputs: dict) -> dict:
    """train_perceptron(X, y, eta, max_epochs); the calls it makes to the student's update are recorded.

    The update keeps the student's own code: the judge follows the training with the student's update
    results, so a wrong update costs only its own exercise.
    """
    ns = getattr(student, "__globals__", {})
    name = inputs["update"]
    own = ns.get(name)
    calls: list = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        result = own(*args, **kwargs)
        if len(calls) < MAX_CALLS:
            calls.append({"args": plain(copy.deepcopy(list(args))), "kwargs": plain(copy.deepcopy(kwargs)),
                          "result": plain(copy.deepcopy(result))})
        return result

    if callable(own):
        ns[name] = recording
    try:
        got = call(student, inputs["X"], inputs["y"], inputs["eta"], inputs["max_epochs"])
    finally:
        if callable(own):
            ns[name] = own
    return {"provenance": provenance(student), "out": plain(got.value), "error": got.error,
            "warnings": got.warnings, "calls": calls, "truncated": len(calls) >= MAX_CALLS}


def record_softmax_fit(student: Any, inputs: dict) -> dict:
    """W, b, losses = fit(X_train, y_train, n_classes=k, progress=False) (the test set stays trusted)."""
    got = call(student, inputs["X"], inputs["y"], n_classes=inputs["n_classes"], progress=False)
    return {"provenance": provenance(student), "out": plain(got.value), "error": got.error, "warnings": got.warnings}


class _Affine:
    """Y = X W + b, He-initialised from the generator the network passes (the skeleton's __init__)."""

    def __init__(self, n_in: int, n_out: int, rng: Any = None) -> None:
        r = np.random.default_rng(rng)
        self.params = {"W": r.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out)), "b": np.zeros(n_out)}
        self.grads: dict = {}

    def forward(self, x: Any) -> Any:
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout: Any) -> Any:
        self.grads["W"] = self.x.T @ dout          # dL/dW = Xᵀ dY
        self.grads["b"] = np.sum(dout, axis=0)     # dL/db = Σₙ dYₙ
        return dout @ self.params["W"].T           # dL/dX = dY Wᵀ


class _ReLU:
    """y = max(0, x)."""

    def __init__(self) -> None:
        self.params, self.grads = {}, {}

    def forward(self, x: Any) -> Any:
        self.mask = x > 0
        return np.where(self.mask, x, 0.0)

    def backward(self, dout: Any) -> Any:
        return np.where(self.mask, dout, 0.0)


class _SoftmaxWithLoss:
    """L = −(1/N) Σₙ log p[n, tₙ];  dL/dx = (p − one_hot(t)) / N."""

    def __init__(self) -> None:
        self.params, self.grads = {}, {}

    def forward(self, x: Any, t: Any) -> Any:
        z = x - np.max(x, axis=1, keepdims=True)
        log_p = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
        self.p, self.t = np.exp(log_p), t
        return -np.sum(log_p[np.arange(x.shape[0]), t]) / x.shape[0]

    def backward(self, dout: Any = 1.0) -> Any:
        dx = self.p.copy()
        dx[np.arange(dx.shape[0]), self.t] -= 1.0
        return dout * dx / dx.shape[0]


#: The earlier exercises a network is built from, by the names the notebook gives them.
_EARLIER_LAYERS = {"Affine": _Affine, "ReLU": _ReLU, "SoftmaxWithLoss": _SoftmaxWithLoss}


def _build_with_correct_layers(network: Any, *args: Any, **kwargs: Any) -> Any:
    """``network(*args, **kwargs)`` with the notebook's Affine, ReLU and SoftmaxWithLoss replaced by correct
    ones while it is built, so that a mistake in those exercises costs their own points and not this one's."""
    with swapped(getattr(getattr(network, "__init__", None), "__globals__", None), _EARLIER_LAYERS, _EARLIER_LAYERS):
        return call(network, *args, **kwargs)


def record_network(student: Any, inputs: dict) -> dict:
    """Build the student's network (from correct layers), load the plan's parameters into net.params, run
    gradient(x, t): what is graded is the network's own wiring (predict, loss, gradient)."""
    rec: dict[str, Any] = {"provenance": provenance(student), "error": None, "param_shapes": None, "loss": None,
                           "grads": None, "kept": False, "warnings": []}
    built = _build_with_correct_layers(student, *inputs["sizes"], rng=inputs["seed"])
    if built.error:
        return {**rec, "error": f"creating the network as {student.__name__}{tuple(inputs['sizes'])} failed with "
                                f"{built.error}"}
    net = built.value
    params = getattr(net, "params", None)
    if not isinstance(params, dict):
        return {**rec, "error": "the network has no params dict (self.params = {'W1': ..., 'b1': ..., ...})"}
    rec["param_shapes"] = {str(k): list(np.shape(v)) for k, v in params.items()}
    if set(params) != set(inputs["params"]) or any(np.shape(params[k]) != np.shape(v)
                                                   for k, v in inputs["params"].items()):
        return rec
    for key, value in inputs["params"].items():  # in place: the layers share these arrays
        loaded = call(np.copyto, params[key], value)
        if loaded.error:
            params[key] = np.array(value)
    got = call(lambda: net.gradient(inputs["x"], inputs["t"]))
    rec["warnings"] = got.warnings
    if got.error:
        return {**rec, "error": f"gradient(x, t) raised {got.error}"}
    loss, grads = got.value if isinstance(got.value, tuple) and len(got.value) == 2 else (got.value, None)
    rec["loss"], rec["grads"] = plain(loss), plain(grads)
    now = getattr(net, "params", None)
    rec["kept"] = isinstance(now, dict) and all(
        k in now and np.shape(now[k]) == np.shape(v) and np.array_equal(np.asarray(now[k]), v)
        for k, v in inputs["params"].items())
    return rec


def record_network_training(student: Any, inputs: dict) -> dict:
    """A fresh student network (from correct layers) trained with the student's train on the plan's data;
    predictions on test inputs."""
    rec: dict[str, Any] = {"provenance": provenance(student), "error": None, "history": None, "predicted": None,
                           "warnings": []}
    built = _build_with_correct_layers(inputs["network"], *inputs["sizes"], rng=inputs["net_seed"])
    if built.error:
        return {**rec, "error": f"creating the network failed with {built.error}"}
    net = built.value
    got = call(student, net, inputs["x"], inputs["t"], progress=False, **inputs["options"])
    rec["warnings"] = got.warnings
    if got.error:
        return {**rec, "error": f"train raised {got.error}"}
    rec["history"] = plain(got.value)
    scores = call(lambda: net.predict(inputs["x_test"]))
    if scores.error:
        return {**rec, "error": f"predict raised {scores.error}"}
    rec["predicted"] = np.argmax(np.asarray(scores.value), axis=-1) if np.ndim(scores.value) == 2 else \
        plain(scores.value)
    return rec
