"""Records of the general kinds: layer, function, gate, numerical_gradient, examples (kernel side).

Each ``record_<kind>(student, inputs)`` runs the student's object on the plan's inputs only and
returns plain data; every call of student code goes through :func:`grader.kernel.student.call`.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from grader.kernel.student import call, plain, provenance


def _arr(v: Any) -> Any:
    p = plain(v)
    return p if isinstance(p, np.ndarray) else (np.asarray(p) if isinstance(p, (int, float, np.generic)) else p)


def _backward(layer: Any, is_loss: bool, dy: Any) -> Any:
    if not is_loss:
        return layer.backward(dy)
    try:
        return layer.backward()
    except TypeError as exc:
        if "argument" not in str(exc):
            raise
        return layer.backward(1.0)


def record_layer(student: Any, inputs: dict) -> dict:
    """Build the student's layer, load the plan's parameters into ``params``, run forward and backward."""
    rec: dict[str, Any] = {"provenance": provenance(student), "build_error": None, "param_error": None,
                           "param_shapes": None, "cases": [], "cached_attrs": []}
    planned = inputs["params"]
    for ci, case in enumerate(inputs["cases"]):
        built = call(student, *copy.deepcopy(inputs["args"]), **copy.deepcopy(inputs["kwargs"]))
        if built.error:
            rec["build_error"] = built.error
            break
        layer = built.value
        params = getattr(layer, "params", None)
        if planned:
            if not isinstance(params, dict):
                rec["param_error"] = "has no params dict (self.params = {name: array})"
                break
            rec["param_shapes"] = {str(k): list(np.shape(v)) for k, v in params.items()}
            if set(params) != set(planned) or any(tuple(np.shape(params[k])) != np.shape(planned[k]) for k in planned):
                break
            for key, value in planned.items():
                params[key] = np.array(value, copy=True)
            if ci == 0:
                for attr, value in getattr(layer, "__dict__", {}).items():
                    if isinstance(value, np.ndarray) and attr not in ("params", "grads") and any(
                            value.shape == np.shape(p) and value is not params[k] for k, p in planned.items()):
                        rec["cached_attrs"].append(attr)
        out: dict[str, Any] = {"forward": None, "forward_error": None, "mutated": [], "backward": None,
                               "backward_error": None, "dy_mutated": False, "grads": {}, "warnings": []}
        rec["cases"].append(out)
        ins = copy.deepcopy(case["inputs"])
        fwd = call(lambda layer=layer, ins=ins: layer.forward(*ins))
        out["warnings"] += fwd.warnings
        if fwd.error:
            out["forward_error"] = fwd.error
            continue
        out["forward"] = _arr(fwd.value)
        out["mutated"] = [i for i, (a, b) in enumerate(zip(ins, case["inputs"], strict=True))
                          if np.shape(a) != np.shape(b) or not np.array_equal(a, b)]
        dy = copy.deepcopy(case["dy"])
        bwd = call(_backward, layer, inputs["is_loss"], dy)
        out["warnings"] += bwd.warnings
        if bwd.error:
            out["backward_error"] = bwd.error
            continue
        out["dy_mutated"] = dy is not None and not np.array_equal(dy, case["dy"])
        dx = bwd.value if isinstance(bwd.value, tuple) else (bwd.value,)
        out["backward"] = [_arr(d) for d in dx]
        grads = getattr(layer, "grads", None)
        out["grads"] = {str(k): _arr(v) for k, v in grads.items()} if isinstance(grads, dict) else {}
    return rec


def record_function(student: Any, inputs: dict) -> dict:
    """Call the student's function on every argument tuple; keep the result and the arguments after."""
    rec: dict[str, Any] = {"provenance": provenance(student), "cases": []}
    if not callable(student):
        rec["not_callable"] = type(student).__name__
        return rec
    for args in inputs["cases"]:
        given = copy.deepcopy(args)
        got = call(student, *given)
        rec["cases"].append({"out": plain(got.value), "args_after": plain(given), "error": got.error,
                             "warnings": got.warnings})
    return rec


def record_gate(student: Any, inputs: dict) -> dict:
    """A gate class on numbers: forward(x, y), then backward(dout) -> (dx, dy)."""
    rec: dict[str, Any] = {"provenance": provenance(student), "cases": []}
    for x, y, dout in inputs["cases"]:
        def run(x=x, y=y, dout=dout) -> Any:
            gate = student()
            return gate.forward(x, y), gate.backward(dout)

        got = call(run)
        z, d = got.value if got.error is None and isinstance(got.value, tuple) else (None, None)
        rec["cases"].append({"z": plain(z), "d": plain(d), "error": got.error, "warnings": got.warnings})
    return rec


#: The test functions of ``numerical_gradient`` (not references: the plan knows their analytic gradients).
TEST_FUNCTIONS = {
    "f(x) = Σ x²": lambda x, a: float(np.sum(x ** 2)),
    "f(x) = Σ x·sin(x)": lambda x, a: float(np.sum(x * np.sin(x))),
    "f(x) = exp(x₀)": lambda x, a: float(np.exp(x.flat[0])),
    "f(x) = Σ tanh(x)·A": lambda x, a: float(np.sum(np.tanh(x) * a)),
    "f(x) = Σ A·x³": lambda x, a: float(np.sum(a * x ** 3)),
}


def record_numerical_gradient(student: Any, inputs: dict) -> dict:
    """The student's ``numerical_gradient(f, x)`` on the test functions (f callable as f() or f(x))."""
    rec: dict[str, Any] = {"provenance": provenance(student), "cases": []}
    for case in inputs["cases"]:
        fun, a = TEST_FUNCTIONS[case["label"]], case.get("a")
        x = np.array(case["x"], dtype="float64")

        def f(*given: Any, _x: np.ndarray = x, _fun: Any = fun, _a: Any = a) -> float:
            return _fun(np.asarray(given[0], dtype="float64") if given else _x, _a)

        got = call(student, f, x)
        rec["cases"].append({"got": plain(got.value), "x_after": x.copy(), "error": got.error,
                             "warnings": got.warnings})
    return rec


#: Worked examples: the student's function on each argument tuple (the expected values stay trusted).
record_examples = record_function
