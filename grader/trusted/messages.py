"""Messages and verdicts (trusted side): compare a student's result with the expected one and say why not
(what a message holds: grader/README.md, "Check helpers").

The error measure is dlcore.gradcheck's:  rel_i = |a_i − e_i| / max(|a_i| + |e_i|, 1e-3 (max|a| + max|e|)).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlcore.gradcheck import relative_error

OK = "✔"
MAX_PROBLEMS = 4
#: Where the reference's result is exactly zero, a relative error is meaningless: accept round-off up to this.
ZERO_ATOL = 1e-10

_FORMULAS: dict[str, dict[str, str]] = {
    "Affine": {"forward": "Y = X W + b", "dx": "dL/dX = dY Wᵀ", "W": "dL/dW = Xᵀ dY",
               "b": "dL/db = Σₙ dYₙ (sum over the batch, axis 0)"},
    "Sigmoid": {"forward": "y = 1 / (1 + exp(−x))", "dx": "dL/dx = dL/dy · y (1 − y)"},
    "Tanh": {"forward": "y = tanh(x)", "dx": "dL/dx = dL/dy · (1 − y²)"},
    "ReLU": {"forward": "y = max(0, x)", "dx": "dL/dx = dL/dy · [x > 0]"},
    "LeakyReLU": {"forward": "y = x if x > 0 else αx", "dx": "dL/dx = dL/dy · (1 if x > 0 else α)"},
    "ELU": {"forward": "y = x if x > 0 else α(eˣ − 1)", "dx": "dL/dx = dL/dy · (1 if x > 0 else y + α)"},
    "Softmax": {"forward": "yᵢ = exp(xᵢ) / Σⱼ exp(xⱼ)", "dx": "dL/dx = y ⊙ (dy − Σⱼ dyⱼ yⱼ)"},
    "SoftmaxCrossEntropy": {"forward": "L = −(1/N) Σₙ log p_{n,tₙ}", "dx": "dL/ds = (p − t) / N"},
    "MSE": {"forward": "L = (1/N) Σₙ ‖yₙ − tₙ‖² / 2 (see the reference's docstring)", "dx": "dL/dy = (y − t) / N"},
}


def resolve_reference(ref: Any) -> Any:
    """A dlcore class or function from its name ("Affine", "dlcore.classic.step") or itself."""
    if not isinstance(ref, str):
        return ref
    if "." in ref:
        module, attr = ref.rsplit(".", 1)
        return getattr(importlib.import_module(module), attr)
    for modname in ("dlcore.nn", "dlcore.nn.activations", "dlcore.nn.linear", "dlcore.nn.losses",
                    "dlcore.nn.gates", "dlcore.classic", "dlcore.nn.functional", "dlcore.gradcheck",
                    "dlcore.optim", "dlcore.nn.init", "dlcore.energy"):
        module = importlib.import_module(modname)  # every one of them is part of dlcore
        if hasattr(module, ref):
            return getattr(module, ref)
    raise ValueError(f"grader: dlcore has no reference called {ref!r} (this is a bug in the notebook's test cell)")


def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))  # the shortest exact form: 1e-09 stays 1e-09, never 0.
    if isinstance(v, np.ndarray):
        return show_array(v)
    return repr(v)


def show_array(a: np.ndarray, limit: int = 8) -> str:
    """A small array with every digit that matters (independent of np.set_printoptions), else its shape."""
    if a.size > limit or a.ndim > 2:
        return f"<array of shape {a.shape}, dtype {a.dtype}>"
    return np.array2string(a, separator=", ", floatmode="unique", suppress_small=False, threshold=1000,
                           formatter={"float_kind": lambda x: repr(float(x))})


def _describe(v: Any) -> str:
    if v is None:
        return "None"
    if isinstance(v, np.ndarray):
        return f"an array of shape {v.shape} and dtype {v.dtype}"
    if isinstance(v, (tuple, list)):
        return f"a {type(v).__name__} of length {len(v)}"
    return f"a {type(v).__name__} ({_fmt(v)})" if np.isscalar(v) else f"a {type(v).__name__}"


def _as_array(v: Any) -> np.ndarray | None:
    """NumPy view of an array-like from any backend, or None when it is not numeric."""
    if v is None or isinstance(v, (str, bytes, dict)):
        return None
    if hasattr(v, "__array_namespace__") and not isinstance(v, np.ndarray):
        try:
            from dlcore import backend
            return np.asarray(backend.to_numpy(v))
        except Exception:
            return None
    try:
        a = np.asarray(v)
    except Exception:
        return None
    return None if a.dtype == object else a


# --------------------------------------------------------------------------- comparisons

def _rel_error(got: np.ndarray, expected: np.ndarray) -> tuple[float, tuple[int, ...]]:
    """Worst relative error and its index (dlcore.gradcheck's measure); NaN where NaN is expected counts 0."""
    return relative_error(got, expected, equal_nan=True)


def _close(a: np.ndarray, b: np.ndarray, tol: float = 1e-6) -> bool:
    if a.shape != b.shape or a.size == 0:
        return False
    scale = max(float(np.max(np.abs(b))), 1e-12)
    return bool(np.all(np.abs(a - b) <= tol * scale + 1e-12))


def likely_cause(got: np.ndarray, expected: np.ndarray, *, batch: int | None = None, quantity: str = "",
                 candidates: Sequence[tuple[Any, str]] = ()) -> str | None:
    """A guess at the mistake behind ``got`` ≠ ``expected`` (None when nothing is recognisable).

    ``candidates``: (value a known mistake produces, explanation), tried first.
    """
    for value, explanation in candidates:
        v = _as_array(value)
        if v is not None and v.shape == got.shape and np.all(np.isfinite(got)) and _close(got, v):
            return explanation
    if got.shape != expected.shape:
        if got.ndim == 2 and got.shape == expected.shape[::-1]:
            return (f"{quantity or 'the result'} looks transposed: it has shape {got.shape} but must have shape "
                    f"{expected.shape}" + (" (the shape of the parameter it belongs to)" if quantity else ""))
        if got.ndim == expected.ndim + 1 and got.shape[1:] == expected.shape:
            return (f"a missing sum over the batch: you kept one row per sample (shape {got.shape}); "
                    f"sum over axis 0, e.g. np.sum(dy, axis=0), to get shape {expected.shape}")
        if got.size == 1 and expected.size > 1:
            return f"everything was summed into one number; sum over axis 0 only to get shape {expected.shape}"
        if got.ndim + 1 == expected.ndim and expected.shape[1:] == got.shape:
            return (f"the batch axis is missing (shape {got.shape} instead of {expected.shape}): "
                    "keep one row per sample, the sum over the batch belongs to the parameter gradients only")
        return None
    if got.size == 0 or not np.all(np.isfinite(got)):
        return ("the result contains NaN or inf: an overflow (e.g. exp of a large number) — use a stable "
                "formulation such as subtracting the row maximum before exp") \
            if got.size and np.all(np.isfinite(expected)) else None
    if _close(got, -expected):
        return "the sign is flipped (you computed −(expected)); check the direction of the subtraction"
    if got.ndim == 2 and got.shape[0] == got.shape[1] and _close(got, expected.T):
        return f"{quantity or 'the result'} is transposed (rows and columns swapped)"
    if batch and batch > 1:
        if _close(got, expected * batch):
            return f"a missing 1/N: the result is N = {batch} times too large; divide by the batch size"
        if _close(got, expected / batch):
            return f"an extra 1/N: the result is N = {batch} times too small; divide by the batch size only once"
    if not np.any(got) and np.any(expected):
        return "the result is all zeros: did the computation run, or is a mask/cached value wrong?"
    denom = float(np.sum(expected * expected))
    if denom > 0:
        c = float(np.sum(got * expected)) / denom
        if abs(c - 1) > 1e-3 and abs(c) > 1e-6 and _close(got, c * expected):
            return f"off by a constant factor of {c:.4g}: a missing or extra constant in the formula"
    if got.ndim == 2 and got.shape[0] > 1:
        diff = got - expected
        if _close(diff, np.broadcast_to(diff[:1], diff.shape)) and np.any(np.abs(diff[0]) > 1e-9):
            return "every row is off by the same vector: a missing or doubled bias term?"
    wrong = np.abs(got - expected) > 1e-6 * (np.max(np.abs(expected)) + 1e-12)
    if 0 < wrong.sum() < wrong.size:
        first = tuple(int(i) for i in np.argwhere(wrong)[0])
        return f"{int(wrong.sum())} of {wrong.size} entries differ (the first at index {first}); the others are right"
    return None


def compare(what: str, got: Any, expected: Any, *, rtol: float = 1e-7, batch: int | None = None,
            quantity: str = "", expect_dtype: str | None = None, names: Sequence[str] | None = None,
            candidates: Sequence[tuple[Any, str]] = (), exact_dtype: bool = False) -> str | None:
    """None when ``got`` matches ``expected`` (arrays, numbers, tuples or dicts of them); otherwise a message.

    ``names``: the names of a tuple's elements (``("loss", "dw", "db")``), used instead of ``what[k]``.
    ``exact_dtype``: an array must have the expected dtype (a bool array where floats are expected fails).
    """
    if isinstance(expected, (tuple, list, dict)):
        if isinstance(expected, dict):
            if not isinstance(got, dict):
                return f"{what}: expected a dict with the keys {sorted(map(str, expected))}, got {_describe(got)}"
            if sorted(map(str, got)) != sorted(map(str, expected)):
                return f"{what}: expected the keys {sorted(map(str, expected))}, got {sorted(map(str, got))}"
            parts = ((f"{what}[{key!r}]", "", got[key], expected[key]) for key in expected)
        elif not isinstance(got, (tuple, list)) or len(got) != len(expected):
            shown = f" ({', '.join(names)})" if names and len(names) == len(expected) else ""
            return (f"{what}: expected a {type(expected).__name__} of {len(expected)} values{shown}, "
                    f"got {_describe(got)}")
        else:
            labels = [names[k] if names and k < len(names) else f"{what}[{k}]" for k in range(len(expected))]
            parts = ((label, quantity or label, g, e) for label, g, e in zip(labels, got, expected, strict=True))
        return next((problem for label, q, g, e in parts
                     if (problem := compare(label, g, e, rtol=rtol, batch=batch, quantity=q, expect_dtype=expect_dtype,
                                            exact_dtype=exact_dtype))), None)
    if got is None and expected is not None:
        return f"{what} is None — did you forget a `return`?"
    e = _as_array(expected)
    g = _as_array(got)
    if e is None:
        if expected is None:
            return None if got is None else f"{what}: expected None (nothing returned), got {_describe(got)}"
        return None if type(got) is type(expected) and got == expected else \
            f"{what}: expected {expected!r}, got {got!r}"
    if g is None:
        return f"{what}: expected {_describe(np.asarray(expected))}, got {_describe(got)}"
    if g.shape != e.shape:
        cause = likely_cause(g, e, batch=batch, quantity=quantity, candidates=candidates)
        msg = f"{what} has shape {g.shape}, expected {e.shape}"
        return msg + (f"\n  likely cause: {cause}" if cause else "")
    if exact_dtype and isinstance(expected, np.ndarray) and isinstance(got, np.ndarray) and g.dtype != e.dtype:
        return (f"{what} has dtype {g.dtype}, expected {e.dtype}"
                + (" (the exercise asks for the result in the dtype of its input, e.g. u.dtype)"
                   if g.dtype.kind == "b" or e.dtype.kind == "f" else ""))
    if e.dtype.kind in "biu" or g.dtype.kind == "b":
        if not np.array_equal(g, e):
            idx = tuple(int(i) for i in np.argwhere(g != e)[0]) if g.shape else ()
            return (f"{what} is wrong at index {idx}: expected {_fmt(e[idx])}, got {_fmt(g[idx])} "
                    f"({int(np.sum(g != e))} of {max(e.size, 1)} entries differ)")
        return None
    if g.dtype.kind not in "fiub":
        return f"{what}: expected numbers, got an array of dtype {g.dtype}"
    err, idx = _rel_error(g, e)
    if e.size and not np.any(e) and np.all(np.abs(g) <= ZERO_ATOL):
        err = 0.0  # an exactly-zero expectation (e.g. dL/dbk in attention) met up to round-off
    if not err <= rtol:
        cause = likely_cause(g, e, batch=batch, quantity=quantity, candidates=candidates)
        where = f" at index {idx}" if idx else ""
        msg = (f"{what} does not match: worst relative error {err:.1e}{where}: "
               f"expected {_fmt(e[idx])}, got {_fmt(g[idx])}")
        return msg + (f"\n  likely cause: {cause}" if cause else "")
    if expect_dtype and hasattr(got, "dtype") and g.dtype.kind == "f" and str(g.dtype) != expect_dtype:
        return (f"{what} has dtype {g.dtype}, expected {expect_dtype} like its inputs: layers never cast "
                "silently (remove the astype/np.float32)")
    return None


@dataclass
class Verdict:
    """The outcome of a check: ``ok``, the success ``summary`` line or the failure ``message``."""

    ok: bool
    summary: str = ""
    message: str = ""

    def text(self) -> str:
        return f"{OK} {self.summary}" if self.ok else self.message


class CheckFailed(AssertionError):
    """A failed check: IPython shows its message alone (see grader.checks), pytest and nbgrader as usual."""


def numpy_warning(what: str, warnings: Sequence[str]) -> str | None:
    """The failure for a NumPy floating-point warning raised inside the student's code (None without one)."""
    bad = [w for w in warnings if w.startswith(("RuntimeWarning", "FloatingPointError"))]
    if not bad:
        return None
    return (f"{what} raised {bad[0]}: the computation overflowed or divided by zero inside your code. "
            "The exercise asks for a formulation that stays finite on this input (e.g. exp of a negative number "
            "only, or subtracting the maximum before exp)")


def delegation(prov: dict, reference: str) -> str | None:
    """The failure when the student's object is, or inherits from, dlcore's code (None otherwise)."""
    name, ref = prov.get("name", "your code"), reference.rsplit(".", 1)[-1]
    why = None
    if str(prov.get("module", "")).startswith("dlcore"):
        why = f"{name} is defined in dlcore ({prov['module']}), not in your notebook"
    elif prov.get("dlcore_bases"):
        why = f"{name} inherits from {', '.join(prov['dlcore_bases'])}"
    elif prov.get("dlcore_code"):  # records that look at code objects (chapters 3-6)
        why = f"{name}'s code comes from dlcore: {', '.join(prov['dlcore_code'])}"
    elif prov.get("calls_reference"):
        why = f"{name} calls dlcore's {ref} ({', '.join(prov['calls_reference'])}) instead of computing the result"
    if why is None:
        return None
    return (f"{name} uses dlcore's reference implementation: {why}. This exercise asks you to write {ref} "
            "yourself, so it scores zero while it delegates to dlcore. You may use NumPy, and dlcore for other things.")

def incomplete(name: str, got: int, want: int) -> str:
    """A record must answer every case of its plan: fewer (or more) results never pass."""
    return f"{name}: the results of {got} of {want} test cases were recorded, so the exercise cannot be checked"


def refused(rec: dict, reference: str, what: str, cases: Sequence | None = None) -> Verdict | None:
    """The failure before any comparison (None when there is none): the student's object delegates to dlcore;
    then, given the plan's ``cases``, a record that lacks some of them; else an error or a NumPy warning that
    the student's one call (``rec["error"]``, ``rec["warnings"]``) raised."""
    why = delegation(rec.get("provenance") or {}, reference)
    if why is None and cases is not None:
        why = incomplete(what, len(rec["cases"]), len(cases)) if len(rec["cases"]) != len(cases) else None
    elif why is None:
        why = f"{what} raised {rec['error']}" if rec.get("error") else numpy_warning(what, rec.get("warnings") or [])
    return Verdict(False, message=why) if why else None

