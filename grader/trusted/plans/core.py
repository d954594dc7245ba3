"""Plans and judges of the general kinds: layer, function, gate, numerical_gradient, examples (trusted).

Inputs in a test cell are literals: numbers, nested lists (arrays: float64 when any entry is a float,
else int64) and draws ``{"normal": [3, 4], "seed": 1}`` (also ``"integers"`` with ``high`` and optional
``low``, ``"linspace": [a, b, n]`` with ``shape``; optional ``scale``, ``dtype``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from dlcore.gradcheck import numerical_gradient
from dlcore.nn.base import Loss
from grader.kinds import Plan
from grader.trusted.messages import (
    _FORMULAS,
    MAX_PROBLEMS,
    Verdict,
    _as_array,
    _describe,
    _fmt,
    _rel_error,
    compare,
    delegation,
    incomplete,
    likely_cause,
    numpy_warning,
    refused,
    resolve_reference,
    show_array,
)

# --------------------------------------------------------------------------- literal inputs


def draw(v: Any) -> Any:
    """The value a literal input stands for (see the module docstring)."""
    if isinstance(v, dict) and v.keys() & {"normal", "integers", "linspace"}:
        rng = np.random.default_rng(int(v.get("seed", 0)))
        if "normal" in v:
            a = rng.standard_normal(tuple(v["normal"])) * float(v.get("scale", 1.0))
        elif "integers" in v:
            a = rng.integers(int(v.get("low", 0)), int(v["high"]), size=tuple(v["integers"])).astype("int64")
        else:
            lo, hi, n = v["linspace"]
            a = np.linspace(float(lo), float(hi), int(n))
        a = a.reshape(tuple(v["shape"])) if "shape" in v else a
        return a.astype(v["dtype"]) if "dtype" in v else a
    if isinstance(v, (list, tuple)):
        a = np.asarray(v)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"grader: an input list must hold numbers, got {v!r} (a bug in the test cell)")
        return a
    return v


def _case(args: Any) -> list:
    return [draw(a) for a in (args if isinstance(args, (tuple, list)) else (args,))]


def _short(obj: Any) -> str:
    return getattr(obj, "__name__", type(obj).__name__)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', _short(obj))}"


def _fail(message: str) -> Verdict:
    return Verdict(False, message=message)


def _bullets(where: str, problems: Sequence[str]) -> str:
    return f"{where}:\n" + "\n".join("- " + p.replace("\n", "\n  ") for p in problems)


# --------------------------------------------------------------------------- functions


def plan_function(reference: str, *, cases: Sequence[Any], rtol: float = 1e-7, name: str | None = None,
                  outputs: Sequence[str] | None = None) -> Plan:
    """Call the student's function and dlcore's ``reference`` on every argument tuple in ``cases``.

    Results (arrays, numbers, tuples; dtype included) must match; arguments the reference updates in
    place must be updated alike, the others must not change; a NumPy warning inside the student's
    code fails. ``outputs`` names the elements of a tuple result (``("loss", "dw", "db")``).
    """
    ref = resolve_reference(reference)
    planned_args, expected = [], []
    for args in map(_case, cases):
        call_args = copy.deepcopy(args)
        try:
            with np.errstate(all="ignore"):
                out, error = ref(*call_args), None
        except Exception as exc:  # the reference rejects this input: the student must raise too
            out, error = None, type(exc).__name__
        planned_args.append(args)
        expected.append({"out": out, "args_after": call_args, "error": error})
    return Plan("function", _qualname(ref), {"cases": planned_args}, {"cases": expected},
                {"name": name or _short(ref), "rtol": rtol, "outputs": list(outputs) if outputs else None})


def judge_function(plan: Plan, rec: dict) -> Verdict:
    name, rtol, outputs = plan.info["name"], plan.info["rtol"], plan.info.get("outputs")
    if rec.get("not_callable"):
        return _fail(f"{name}: expected a function, got a {rec['not_callable']}")
    cases, expected = plan.inputs["cases"], plan.expected["cases"]
    if bad := refused(rec, plan.reference, name, cases):
        return bad
    worst = 0.0
    for ci, (args, case, got) in enumerate(zip(cases, expected, rec["cases"], strict=True)):
        shown = ", ".join(_describe(a) if isinstance(a, (list, tuple)) else _fmt(a) for a in args)
        where = f"{name}({shown}) [case {ci + 1} of {len(cases)}]"
        if case["error"]:
            if got["error"] is None:
                return _fail(f"{where}: expected an error ({case['error']}) for this input, but your function "
                             f"returned {_describe(got['out'])}")
            continue
        problem = f"{where} raised {got['error']}" if got["error"] else \
            numpy_warning(where, got.get("warnings") or [])
        if problem:
            return _fail(problem)
        batch = next((a.shape[0] for a in args if isinstance(a, np.ndarray) and a.ndim == 2), None)
        problem = compare("the result", got["out"], case["out"], rtol=rtol, batch=batch, names=outputs,
                          exact_dtype=True)
        if problem:
            return _fail(_bullets(where, [problem]))
        after = got.get("args_after") or []
        if len(after) != len(args):
            return _fail(f"{where}: the record of the arguments after the call is incomplete")
        for i, (before, after_ref, after_stu) in enumerate(zip(args, case["args_after"], after, strict=True)):
            problem = compare(f"argument #{i + 1} after the call", after_stu, after_ref, rtol=rtol)
            if problem and compare("", after_ref, before, rtol=0.0) is not None:  # the reference updates it
                return _fail(_bullets(f"{where}: the argument #{i + 1} must be updated in place", [problem]))
            if problem:
                return _fail(f"{where}: your function modified its argument #{i + 1} in place; work on a copy "
                             "(e.g. w = w.copy()) or return a new array")
        ga, ea = _as_array(got["out"]) if not isinstance(got["out"], tuple) else None, _as_array(case["out"])
        if ga is not None and ea is not None and ga.shape == ea.shape and ea.dtype.kind == "f":
            worst = max(worst, _rel_error(ga.astype("float64"), ea)[0])
    return Verdict(True, summary=f"{name}: all {len(cases)} cases match the reference "
                                 f"(worst rel. error {worst:.1e})")


# --------------------------------------------------------------------------- worked examples


def plan_examples(reference: str, *, cases: Sequence[Any], expected: Sequence[Any], rtol: float = 1e-7,
                  outputs: Sequence[str] | None = None, hint: str | None = None) -> Plan:
    """The student's function on argument tuples whose results the test cell states (``expected``)."""
    if len(cases) != len(expected):
        raise ValueError("grader: check_examples needs one expected result per case (a bug in the test cell)")
    args = [_case(c) for c in cases]
    exp = [{"out": _literal(e), "args_after": copy.deepcopy(a), "error": None}
           for a, e in zip(args, expected, strict=True)]
    return Plan("examples", reference, {"cases": args}, {"cases": exp},
                {"name": reference, "rtol": rtol, "outputs": list(outputs) if outputs else None, "hint": hint})


def _literal(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _literal(x) for k, x in v.items()}
    return tuple(_literal(x) for x in v) if isinstance(v, tuple) else draw(v)


def judge_examples(plan: Plan, rec: dict) -> Verdict:
    verdict = judge_function(plan, rec)
    if verdict.ok:
        verdict.summary = verdict.summary.replace("match the reference", "give the expected results")
    elif plan.info.get("hint"):
        verdict.message += f"\n  hint: {plan.info['hint']}"
    return verdict


# --------------------------------------------------------------------------- gates


def plan_gate(reference: str, *, cases: Sequence[Sequence[float]]) -> Plan:
    """Add/Mul gates on numbers: forward(x, y) and backward(dout) -> (dx, dy) against the reference.

    A case is (x, y) or (x, y, dout); without dout, several upstream gradients are tried so that a
    backward that ignores dout cannot pass.
    """
    ref_cls = resolve_reference(reference)
    douts = (1.0, 2.5, -0.75)
    ins, exp = [], []
    for ci, case in enumerate(cases):
        x, y, *rest = case
        dout = rest[0] if rest else douts[ci % len(douts)]
        ref = ref_cls()
        exp.append({"z": ref.forward(x, y), "d": tuple(ref.backward(dout))})
        ins.append([x, y, dout])
    return Plan("gate", _qualname(ref_cls), {"cases": ins}, {"cases": exp}, {"name": _short(ref_cls)})


def judge_gate(plan: Plan, rec: dict) -> Verdict:
    name = str((rec.get("provenance") or {}).get("name") or plan.info["name"])
    if bad := refused(rec, plan.reference, name, plan.inputs["cases"]):
        return bad
    for ci, ((x, y, dout), case, got) in enumerate(zip(plan.inputs["cases"], plan.expected["cases"], rec["cases"],
                                                       strict=True)):
        where = f"{name}: forward({_fmt(x)}, {_fmt(y)}), backward({_fmt(dout)}) [case {ci + 1} of {len(rec['cases'])}]"
        if got["error"]:
            return _fail(f"{where} raised {got['error']}")
        d, d_ref = got["d"], case["d"]
        problem = compare("forward's result", got["z"], case["z"]) or \
            compare("backward's (dx, dy)", d, d_ref, names=("dx", "dy"))
        if problem:
            try:
                mine = [float(v) for v in d] if isinstance(d, (tuple, list)) and len(d) == 2 else None
            except (TypeError, ValueError):
                mine = None
            if mine is not None and not problem.startswith("forward"):
                theirs = [float(v) for v in d_ref]
                if np.allclose(mine, theirs[::-1]):
                    problem += "\n  likely cause: dx and dy are swapped"
                elif dout != 1 and np.allclose([v * dout for v in mine], theirs):
                    problem += "\n  likely cause: backward ignores dout; multiply the local derivative by dout"
            return _fail(_bullets(where, [problem]))
    return Verdict(True, summary=f"{name}: forward and backward match the reference on {len(rec['cases'])} cases")


# --------------------------------------------------------------------------- numerical gradient


def _ng_cases(seed: int) -> list[tuple[str, np.ndarray, np.ndarray | None, np.ndarray]]:
    """(label, x, A, analytic gradient) for each test function (the kernel knows the functions by label)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((2, 3))
    a3 = rng.standard_normal((2, 2, 3))
    x1, x2, x3, x4, x5 = (rng.standard_normal(s) for s in (3, (2, 3), 1, (2, 3), (2, 2, 3)))
    return [("f(x) = Σ x²", x1, None, 2 * x1),
            ("f(x) = Σ x·sin(x)", x2, None, np.sin(x2) + x2 * np.cos(x2)),
            ("f(x) = exp(x₀)", x3, None, np.exp(x3)),
            ("f(x) = Σ tanh(x)·A", x4, a, (1 - np.tanh(x4) ** 2) * a),
            ("f(x) = Σ A·x³", x5, a3, 3 * a3 * x5 ** 2)]


def plan_numerical_gradient(reference: str = "numerical_gradient", *, seed: int = 12) -> Plan:
    """The student's ``numerical_gradient(f, x)`` (central differences) on five functions, x up to 3-D.

    ``f`` may be called as ``f()`` (dlcore's convention: x is perturbed in place) or as ``f(x)``.
    The result must match the analytic gradient to 1e-5, and ``x`` must be left as it was.
    """
    from grader.kernel.records.core import TEST_FUNCTIONS  # plain math, shared with the kernel

    cases, exp = [], []
    for label, x, a, grad in _ng_cases(seed):
        xd = x.copy()
        dl = np.asarray(numerical_gradient(lambda _x=xd, _a=a, _f=TEST_FUNCTIONS[label]: _f(_x, _a), xd))
        cases.append({"label": label, "x": x, "a": a})
        exp.append({"expected": grad, "dlcore": dl})
    return Plan("numerical_gradient", "dlcore.gradcheck.numerical_gradient", {"cases": cases}, {"cases": exp},
                {"name": "numerical_gradient"})


def judge_numerical_gradient(plan: Plan, rec: dict) -> Verdict:
    name = str((rec.get("provenance") or {}).get("name") or "numerical_gradient")
    if bad := refused(rec, plan.reference, name, plan.inputs["cases"]):
        return bad
    worst = 0.0
    for case, exp, got in zip(plan.inputs["cases"], plan.expected["cases"], rec["cases"], strict=True):
        x0, expected, dl = case["x"], exp["expected"], exp["dlcore"]
        where = f"{name} on {case['label']} with x of shape {x0.shape}"
        if got["error"]:
            hint = ("\n  hint: iterate over every index of a multi-dimensional x, e.g. with np.ndindex(*x.shape)"
                    if x0.ndim > 1 else "")
            return _fail(f"{where} raised {got['error']}{hint}")
        problem = compare("the gradient", got["got"], expected, rtol=1e-5)
        if problem:
            g = _as_array(got["got"]) if case["label"] == "f(x) = Σ x²" else None
            offset = g - expected if g is not None and g.shape == expected.shape else None
            if offset is not None and np.allclose(offset, offset.flat[0]) and abs(offset.flat[0]) > 1e-9:
                problem += ("\n  likely cause: a one-sided difference (f(x+h) − f(x))/h; use the central "
                            "difference (f(x+h) − f(x−h)) / 2h")
            return _fail(f"{where}:\n- {problem}\n  (dlcore.gradcheck.numerical_gradient gives "
                         f"{show_array(dl.ravel()[:4])}{' …' if dl.size > 4 else ''})")
        x_after = _as_array(got["x_after"])
        if x_after is None or x_after.shape != x0.shape or not np.allclose(x_after, x0, rtol=0, atol=1e-12):
            change = (f"{np.max(np.abs(x_after - x0)):.1e}" if x_after is not None and x_after.shape == x0.shape
                      else "x changed shape")
            return _fail(f"{where}: x was not restored after the call (worst change {change}); put every entry back "
                         "to its original value")
        worst = max(worst, _rel_error(np.asarray(got["got"], dtype="float64"), expected)[0])
    return Verdict(True, summary=f"{name}: matches the analytic gradients of {len(rec['cases'])} test functions "
                                 f"(worst rel. error {worst:.1e})")


# --------------------------------------------------------------------------- layers


#: A gradient that agrees with central differences to this relative error is right (even where dlcore's is not).
NUMERIC_RTOL = 1e-5


def _float_like(a: Any) -> bool:
    return np.asarray(a).dtype.kind == "f"


def _reference_layer(cls: Any, args: list, kwargs: dict, params: dict) -> Any:
    layer = cls(*copy.deepcopy(args), **copy.deepcopy(kwargs))
    layer.params.update({key: value.copy() for key, value in params.items()})
    return layer


def plan_layer(reference: str, *, args: Sequence[Any] = (), kwargs: dict | None = None,
               shapes: Sequence[Sequence[int]] = ((4, 5),), seed: int = 0, n_classes: int | None = None,
               inputs: Sequence[Any] | None = None, check_numeric: bool = True) -> Plan:
    """Compare the student's layer CLASS with dlcore's ``reference`` (its name in dlcore.nn).

    Both are built with ``args``/``kwargs``; the student's params dict receives the reference's
    (seeded, float64) parameters; both run forward and backward on seeded inputs of every shape in
    ``shapes`` (for losses: scores and integer labels with ``n_classes`` classes) or on ``inputs``
    (literal argument tuples); the gradients are also checked against central differences.
    """
    ref_cls = resolve_reference(reference)
    args, kwargs = list(args), dict(kwargs or {})
    rng = np.random.default_rng(seed)
    is_loss = isinstance(ref_cls, type) and issubclass(ref_cls, Loss)
    params = {}
    for key, value in getattr(ref_cls(*args, **kwargs), "params", {}).items():
        v = np.asarray(_as_array(value))
        params[key] = (rng.standard_normal(v.shape) * 0.5).astype("float64") if _float_like(v) else v.copy()
    cases_in = [[a.astype("float64") if a.dtype.kind == "f" else a for a in map(np.asarray, _case(c))]
                for c in inputs or ()]
    for shape in shapes if inputs is None else ():
        shape = tuple(int(s) for s in shape)
        z = rng.standard_normal(shape)
        if not is_loss:
            cases_in.append([np.where(z >= 0, 1.0, -1.0) * (np.abs(z) + 0.05)])  # away from kinks at 0
        elif (n_classes is not None or "CrossEntropy" in _short(ref_cls)) and len(shape) == 2:
            cases_in.append([z, rng.integers(0, int(n_classes or shape[1]), size=shape[0]).astype("int64")])
        else:
            cases_in.append([z, rng.standard_normal(shape)])
    planned, expected = [], []
    for ins in cases_in:
        layer = _reference_layer(ref_cls, args, kwargs, params)
        with np.errstate(all="ignore"):
            out = _as_array(layer.forward(*[a.copy() for a in ins]))
            dy = None if is_loss else rng.standard_normal(out.shape)
            dx = layer.backward() if is_loss else layer.backward(dy.copy())
        expected.append({"out": np.asarray(out, dtype="float64"),
                         "dx": [np.asarray(_as_array(d)) for d in (dx if isinstance(dx, tuple) else (dx,))],
                         "grads": {k: np.asarray(_as_array(layer.grads[k])) for k in params if k in layer.grads},
                         # central differences of the reference's forward, computed here: the student's forward
                         # must match it, so this is also the numerical gradient of the student's forward
                         "numeric": _numeric_gradients(ref_cls, args, kwargs, params, is_loss, ins, dy)
                         if check_numeric else {}})
        planned.append({"inputs": ins, "dy": dy})
    return Plan("layer", _qualname(ref_cls), {"args": args, "kwargs": kwargs, "params": params, "cases": planned,
                                              "is_loss": is_loss},
                {"cases": expected}, {"name": _short(ref_cls), "seed": seed})


def _numeric_gradients(cls: Any, args: list, kwargs: dict, params: dict, is_loss: bool, ins: list,
                       dy: Any) -> dict:
    layer = _reference_layer(cls, args, kwargs, params)
    ins = [a.copy() for a in ins]

    def loss() -> float:
        y = np.asarray(_as_array(layer.forward(*ins)), dtype="float64")
        return float(y.reshape(-1)[0]) if is_loss else float(np.sum(y * dy))

    targets = [i for i, a in enumerate(ins) if _float_like(a)][: 1 if is_loss else None]
    try:
        with np.errstate(all="ignore"):
            numeric = {"dx" if len(targets) == 1 else f"dx{i + 1}": numerical_gradient(loss, ins[i]) for i in targets}
            numeric.update({key: numerical_gradient(loss, layer.params[key]) for key in params
                            if _float_like(layer.params[key])})
    except Exception:  # the reference refuses a perturbed input (e.g. a probability just below 0): no numeric check
        return {}
    return numeric


def judge_layer(plan: Plan, rec: dict) -> Verdict:
    """Compare a record with the plan; the first failing case is reported with all its problems."""
    name, inp = plan.info["name"], plan.inputs
    formulas = _FORMULAS.get(name, {})
    student = (rec.get("provenance") or {}).get("name", "your layer")
    if why := delegation(rec.get("provenance") or {}, plan.reference):
        return _fail(why)
    ctor = f"{student}({', '.join([repr(a) for a in inp['args']] + [f'{k}={v!r}' for k, v in inp['kwargs'].items()])})"
    if rec["build_error"]:
        return _fail(f"{student}: creating the layer as {ctor} failed with {rec['build_error']}")
    if rec["param_error"]:
        return _fail(f"{student} {rec['param_error']}; the reference has params {sorted(inp['params'])}")
    got_shapes, want_keys = rec["param_shapes"], sorted(inp["params"])
    if want_keys and got_shapes is not None and sorted(got_shapes) != want_keys:
        return _fail(f"{student}.params has the keys {sorted(got_shapes)}, expected {want_keys}: use exactly these "
                     f"names (e.g. self.params = {{{', '.join(repr(k) + ': ...' for k in want_keys)}}})")
    for key in want_keys if got_shapes is not None else ():
        got_shape, want = tuple(got_shapes[key] or ()), inp["params"][key].shape
        if got_shape != want:
            cause = likely_cause(np.zeros(got_shape), np.zeros(want), quantity=f"params[{key!r}]")
            return _fail(f"{student}: params[{key!r}] created by {ctor} has shape {got_shape}, expected {want}"
                         + (f"\n  likely cause: {cause}" if cause else ""))
    if len(rec["cases"]) != len(inp["cases"]):
        return _fail(incomplete(student, len(rec["cases"]), len(inp["cases"])))
    worst = 0.0
    notes: list[str] = []
    n_float = 1 if inp["is_loss"] else sum(1 for a in (inp["cases"][0]["inputs"] if inp["cases"] else [])
                                             if _float_like(a))
    for case, exp, got in zip(inp["cases"], plan.expected["cases"], rec["cases"], strict=True):
        shapes = ", ".join(str(tuple(np.shape(a))) for a in case["inputs"])
        first = np.asarray(case["inputs"][0])
        batch = first.shape[0] if first.ndim else None
        problems: list[str] = []
        warned = numpy_warning("your layer", got.get("warnings") or [])
        if got["forward_error"] or warned:
            problems.append(f"forward raised {got['forward_error']}" if got["forward_error"] else warned)
        else:
            y = got["forward"]
            y_cmp = y.reshape(()) if inp["is_loss"] and getattr(y, "size", 0) == 1 else y
            p = compare("the output of forward", y_cmp, exp["out"], rtol=1e-7, batch=batch,
                        expect_dtype=None if inp["is_loss"] else "float64")
            if p:
                problems.append(p + (f"\n  formula: {formulas['forward']}" if "forward" in formulas else ""))
                if rec["cached_attrs"]:
                    problems.append(f"note: your layer keeps copies of its parameters in self."
                                    f"{', self.'.join(rec['cached_attrs'])}; read them from self.params[...] when you "
                                    "use them (the checker loads new values there)")
            else:
                worst = max(worst, _rel_error(np.asarray(y_cmp, dtype="float64"), exp["out"])[0])
            problems += [f"forward modified its input #{i + 1} in place; work on a copy (e.g. x = x.copy() or "
                         "out = np.maximum(x, 0))" for i in got["mutated"]]
        if not problems and got["backward_error"]:
            problems.append(f"backward raised {got['backward_error']}")
        elif not problems:
            problems += _judge_gradients(inp["is_loss"], case, exp, got, n_float, batch, formulas, notes)
            for g, e in [*zip(got["backward"] or [], exp["dx"], strict=False),
                         *((got["grads"].get(k), e) for k, e in exp["grads"].items())]:
                if isinstance(g, np.ndarray) and g.shape == e.shape and g.dtype.kind in "fiu":
                    worst = max(worst, _rel_error(g, e)[0])
            if got["dy_mutated"]:
                problems.append("backward modified dy (its argument) in place; compute a new array instead")
        if problems:
            if len(problems) > MAX_PROBLEMS:
                problems = problems[:MAX_PROBLEMS] + [f"… and {len(problems) - MAX_PROBLEMS} more"]
            return _fail(_bullets(f"{student} does not match dlcore's {name} (checked on inputs of shape {shapes}, "
                                  f"seed {plan.info['seed']})", problems))
    parts = ["forward", "dscores" if inp["is_loss"] else "dx"] + [f"d{k}" for k in inp["params"]]
    summary = (f"{student}: {', '.join(parts)} match the reference on {len(inp['cases'])} input shape(s) "
               f"(worst rel. error {worst:.1e})")
    return Verdict(True, summary=summary + (" — " + "; ".join(notes) if notes else ""))


def _judge_gradients(is_loss: bool, case: dict, exp: dict, got: dict, n_float: int, batch: int | None,
                     formulas: dict, notes: list[str]) -> list[str]:
    problems = []
    expected: dict[str, tuple[np.ndarray, Any]] = {}
    back = got["backward"] or []
    float_idx = [i for i, a in enumerate(case["inputs"]) if _float_like(a)][: 1 if is_loss else None]
    for k, i in enumerate(float_idx):
        e = exp["dx"][i] if i < len(exp["dx"]) else exp["dx"][k]
        expected["dx" if len(float_idx) == 1 else f"dx{k + 1}"] = (e, back[i] if i < len(back) else
                                                                   back[k] if k < len(back) else None)
    for k in exp["grads"]:
        if k not in got["grads"]:
            problems.append(f"backward did not set grads[{k!r}] (store dL/d{k} there: self.grads[{k!r}] = ...)")
        else:
            expected[k] = (exp["grads"][k], got["grads"][k])
    numeric = exp.get("numeric") or {}
    for key, (e, g) in expected.items():
        label = f"the gradient d{key} stored in grads[{key!r}]" if not key.startswith("dx") else \
            "the gradient returned by backward" + ("" if n_float == 1 else f" ({key})")
        n = numeric.get(key)
        candidates = [] if not key.startswith("dx") or case["dy"] is None else [(
            case["dy"], "backward returns dy unchanged: multiply it by the local derivative (the chain rule "
                        "dL/dx = dL/dy · ∂y/∂x)")]
        problem = compare(label, g, e, rtol=1e-7, batch=batch, candidates=candidates,
                          quantity=("dL/dx" if key.startswith("dx") else f"d{key}"), expect_dtype="float64")
        num_ok = None
        if n is not None and isinstance(g, np.ndarray) and g.dtype.kind in "fiu" and g.shape == n.shape:
            num_ok = _rel_error(np.asarray(g, dtype="float64"), n)[0] <= NUMERIC_RTOL
        if problem and num_ok:  # the student agrees with central differences: the reference is at fault
            notes.append(f"dlcore's reference {key} disagrees with the numerical gradient; please tell the "
                         "instructor (your result was accepted)")
        elif problem:
            formula = formulas.get(key if not key.startswith("dx") else "dx")
            problems.append(problem + (f"\n  formula: {formula}" if formula else "")
                            + ("\n  (your gradient also disagrees with the numerical gradient of your own forward)"
                               if num_ok is False else ""))
        elif num_ok is False:
            num_err, idx = _rel_error(np.asarray(g, dtype="float64"), n)
            problems.append(
                f"{label} matches dlcore's reference but not the numerical gradient (relative error {num_err:.1e} "
                f"at {idx}): this points at a bug in the reference or the checker; please tell the instructor")
    return problems
