"""Records of chapters 1–2's kinds: gate weights, perceptron training, the closing experiments, a network.

Each runs the student's objects on the plan's inputs only (never labels of a test set, never expected
values) and returns plain data; every call of student code goes through ``student.call``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.kernel.student import call, copied, plain, provenance

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
            calls.append({"args": plain(copied(list(args))), "kwargs": plain(copied(kwargs)),
                          "result": plain(copied(result))})
        return result

    if callable(own):
        ns[name] = recording
    try:
        got = call(student, copied(inputs["X"]), copied(inputs["y"]), inputs["eta"], inputs["max_epochs"])
    finally:
        if callable(own):
            ns[name] = own
    return {"provenance": provenance(student), "out": plain(got.value), "error": got.error,
            "warnings": got.warnings, "calls": calls, "truncated": len(calls) >= MAX_CALLS}


def record_softmax_fit(student: Any, inputs: dict) -> dict:
    """W, b, losses = fit(X_train, y_train, n_classes=k, progress=False) (the test set stays trusted)."""
    got = call(student, copied(inputs["X"]), copied(inputs["y"]), n_classes=inputs["n_classes"], progress=False)
    return {"provenance": provenance(student), "out": plain(got.value), "error": got.error, "warnings": got.warnings}


def record_network(student: Any, inputs: dict) -> dict:
    """Build the student's network, load the plan's parameters into net.params, run gradient(x, t)."""
    rec: dict[str, Any] = {"provenance": provenance(student), "error": None, "param_shapes": None, "loss": None,
                           "grads": None, "kept": False, "warnings": []}
    built = call(student, *inputs["sizes"], rng=inputs["seed"])
    if built.error:
        rec["error"] = f"creating the network as {student.__name__}{tuple(inputs['sizes'])} failed with {built.error}"
        return rec
    net = built.value
    params = getattr(net, "params", None)
    if not isinstance(params, dict):
        rec["error"] = "the network has no params dict (self.params = {'W1': ..., 'b1': ..., ...})"
        return rec
    rec["param_shapes"] = {str(k): list(np.shape(v)) for k, v in params.items()}
    if set(params) != set(inputs["params"]) or any(np.shape(params[k]) != np.shape(v)
                                                   for k, v in inputs["params"].items()):
        return rec
    for key, value in inputs["params"].items():  # in place: the layers share these arrays
        loaded = call(np.copyto, params[key], value)
        if loaded.error:
            params[key] = np.array(value)
    got = call(lambda: net.gradient(copied(inputs["x"]), copied(inputs["t"])))
    rec["warnings"] = got.warnings
    if got.error:
        rec["error"] = f"gradient(x, t) raised {got.error}"
        return rec
    value = got.value
    if isinstance(value, tuple) and len(value) == 2:
        rec["loss"], rec["grads"] = plain(value[0]), plain(value[1])
    else:
        rec["loss"] = plain(value)
    now = getattr(net, "params", None)
    rec["kept"] = isinstance(now, dict) and all(
        k in now and np.shape(now[k]) == np.shape(v) and np.array_equal(np.asarray(now[k]), v)
        for k, v in inputs["params"].items())
    return rec


def record_network_training(student: Any, inputs: dict) -> dict:
    """A fresh student network trained with the student's train on the plan's data; predictions on test inputs."""
    rec: dict[str, Any] = {"provenance": provenance(student), "error": None, "history": None, "predicted": None,
                           "warnings": []}
    built = call(inputs["network"], *inputs["sizes"], rng=inputs["net_seed"])
    if built.error:
        rec["error"] = f"creating the network failed with {built.error}"
        return rec
    net = built.value
    got = call(student, net, copied(inputs["x"]), copied(inputs["t"]), progress=False, **inputs["options"])
    rec["warnings"] = got.warnings
    if got.error:
        rec["error"] = f"train raised {got.error}"
        return rec
    rec["history"] = plain(got.value)
    scores = call(lambda: net.predict(copied(inputs["x_test"])))
    if scores.error:
        rec["error"] = f"predict raised {scores.error}"
        return rec
    rec["predicted"] = np.argmax(np.asarray(scores.value), axis=-1) if np.ndim(scores.value) == 2 else \
        plain(scores.value)
    return rec
