"""Check helpers for the notebooks' test cells: compare a student's code with dlcore's reference.

Every public helper either prints ONE short line starting with "✔" or raises ``AssertionError``
with a message that says which quantity is wrong, the worst relative error and where, expected
and got values, and a likely cause when one is recognisable. Nothing is written to stderr
(warnings are silenced inside the helpers; nbgrader scores a test cell that writes to stderr
as failed).

Each check is split into three steps so that the verdict can be computed outside the student's
kernel (see grader/README.md, "Verdicts outside the kernel"):

    plan   = plan_*(...)            trusted: seeded inputs, parameters and the reference's results
    record = record_*(student, plan)   untrusted: runs the student's code, captures plain data
    verdict = judge_*(plan, record)    trusted and pure: compares, finds likely causes

``plan`` and ``record`` hold only arrays, numbers and strings (``to_json``/``from_json``), so the
record can cross a process boundary. Inside a notebook the three steps run back to back.

The error measure is dlcore.gradcheck's:  rel_i = |a_i − e_i| / max(|a_i| + |e_i|, 1e-3 (max|a| + max|e|)).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import importlib
import inspect
import io
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NoReturn

import numpy as np

from dlcore.gradcheck import numerical_gradient, relative_error

__all__ = [
    "check_layer", "check_function", "check_gate", "check_numerical_gradient",
    "check_value", "check_true", "check_accuracy",
    "plan_layer", "record_layer", "judge_layer",
    "plan_function", "record_function", "judge_function",
    "plan_gate", "record_gate", "judge_gate",
    "plan_numerical_gradient", "record_numerical_gradient", "judge_numerical_gradient",
    "Verdict", "to_json", "from_json", "RECORDS_ENV",
]

OK = "✔"
#: When this environment variable names a file, every check appends its plan and record to it
#: (one JSON object per line) so that a trusted process can recompute the verdict (issue 5).
RECORDS_ENV = "DLCOURSE_CHECK_RECORDS"
_DLCORE_DIR = None  # filled lazily: the directory of the dlcore package
_BASES_ALLOWED = {"dlcore.nn.base.Layer", "dlcore.nn.base.Loss"}  # students may subclass the protocol
_MAX_PROBLEMS = 4
#: Where the reference's result is exactly zero, a relative error is meaningless: accept round-off up to this.
_ZERO_ATOL = 1e-10

# Formulas quoted in messages, per reference and quantity (lecture notation).
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


# --------------------------------------------------------------------------- plumbing


@contextlib.contextmanager
def _quiet(stdout: bool = False) -> Iterator[None]:
    """Silence warnings, floating-point error reports and stderr (and stdout when asked)."""
    sink = io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.enter_context(np.errstate(all="ignore"))
        stack.enter_context(contextlib.redirect_stderr(sink))
        if stdout:
            stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        yield


def _dlcore_dir() -> str:
    global _DLCORE_DIR
    if _DLCORE_DIR is None:
        import dlcore
        _DLCORE_DIR = os.path.abspath(next(iter(dlcore.__path__)))
    return _DLCORE_DIR


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _short(obj: Any) -> str:
    return getattr(obj, "__name__", type(obj).__name__)


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
        try:
            module = importlib.import_module(modname)
        except ImportError:
            continue
        if hasattr(module, ref):
            return getattr(module, ref)
    raise ValueError(f"grader: dlcore has no reference called {ref!r} (this is a bug in the notebook's test cell)")


def _error_text(exc: BaseException) -> str:
    detail = str(exc).strip()
    text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if isinstance(exc, NotImplementedError):
        text += " (this exercise is not implemented yet)"
    return text if len(text) < 600 else text[:600] + " …"


def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    return repr(v)


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
    if a.dtype == object:
        return None
    return a


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
        if got.size and not np.all(np.isfinite(got)) and np.all(np.isfinite(expected)):
            return ("the result contains NaN or inf: an overflow (e.g. exp of a large number) — use a stable "
                    "formulation such as subtracting the row maximum before exp")
        return None
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
            quantity: str = "", expect_dtype: str | None = None,
            candidates: Sequence[tuple[Any, str]] = ()) -> str | None:
    """None when ``got`` matches ``expected`` (arrays, numbers, or tuples of them); otherwise a message."""
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"{what}: expected a {type(expected).__name__} of {len(expected)} values, got {_describe(got)}"
        for k, (g, e) in enumerate(zip(got, expected, strict=True)):
            problem = compare(f"{what}[{k}]", g, e, rtol=rtol, batch=batch, quantity=quantity,
                              expect_dtype=expect_dtype)
            if problem:
                return problem
        return None
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
    if e.dtype.kind in "biu" or g.dtype.kind == "b":
        if not np.array_equal(g, e):
            idx = tuple(int(i) for i in np.argwhere(g != e)[0]) if g.shape else ()
            return (f"{what} is wrong at index {idx}: expected {_fmt(e[idx])}, got {_fmt(g[idx])} "
                    f"({int(np.sum(g != e))} of {max(e.size, 1)} entries differ)")
        return None
    if g.dtype.kind not in "fiub":
        return f"{what}: expected numbers, got an array of dtype {g.dtype}"
    err, idx = _rel_error(g, e)
    if e.size and not np.any(e) and np.all(np.abs(g) <= _ZERO_ATOL):
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


# --------------------------------------------------------------------------- verdicts and serialisation


@dataclass
class Verdict:
    """The outcome of a check: ``ok``, the success ``summary`` line or the failure ``message``."""

    ok: bool
    summary: str = ""
    message: str = ""
    worst: float = 0.0

    def enforce(self) -> None:
        """Print the success line or raise AssertionError with the message."""
        __tracebackhide__ = True
        if not self.ok:
            _fail(self.message)
        print(f"{OK} {self.summary}")


def _fail(message: str) -> NoReturn:
    """Raise a check's verdict. Kept tiny: IPython shows the raising frame in the student's traceback."""
    raise AssertionError(message) from None  # no "during handling of another exception" noise


def _encode(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return {"__ndarray__": base64.b64encode(np.ascontiguousarray(v).tobytes()).decode("ascii"),
                "dtype": v.dtype.str, "shape": list(v.shape)}
    if isinstance(v, np.generic):
        return _encode(np.asarray(v))
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x) for x in v]}
    if isinstance(v, list):
        return [_encode(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _encode(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return {"__float__": repr(v)}
    if v is None or isinstance(v, (str, int, float)):
        return v
    return _NOT_DATA


#: dtype kinds a record may carry (no object or structured dtypes: they would turn bytes into pointers).
_SAFE_KINDS = set("biufcSU")
_MAX_DIMS = 32


def _decode_array(v: dict) -> np.ndarray:
    dtype = np.dtype(str(v["dtype"]))
    if dtype.kind not in _SAFE_KINDS or dtype.hasobject or dtype.fields is not None:
        raise ValueError(f"refusing to decode an array of dtype {dtype}")
    shape = [int(n) for n in v["shape"]]
    if len(shape) > _MAX_DIMS or any(n < 0 for n in shape):
        raise ValueError(f"refusing to decode an array of shape {shape}")
    raw = base64.b64decode(str(v["__ndarray__"]), validate=True)
    if math.prod(shape) * dtype.itemsize != len(raw):
        raise ValueError("array data does not match its shape and dtype")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _decode(v: Any) -> Any:
    """Inverse of :func:`_encode`; safe on untrusted input (only numeric/str arrays, no pickle, no objects)."""
    if isinstance(v, dict):
        if "__ndarray__" in v:
            return _decode_array(v)
        if "__tuple__" in v:
            return tuple(_decode(x) for x in v["__tuple__"])
        if "__float__" in v:
            return float(str(v["__float__"]))
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def to_json(obj: Any) -> str:
    """Serialise a plan or record (dataclass of arrays, numbers, strings) to JSON, without pickle."""
    return json.dumps({"type": type(obj).__name__, "data": _encode(asdict(obj))})


def from_json(text: str | dict) -> Any:
    """Inverse of :func:`to_json` (also accepts the already parsed dict)."""
    raw = json.loads(text) if isinstance(text, str) else text
    from grader.kinds import Plan, Record
    classes = (LayerPlan, LayerRecord, FunctionPlan, FunctionRecord, GatePlan, GateRecord, NumGradPlan, NumGradRecord,
               Plan, Record)
    cls = {c.__name__: c for c in classes}[raw["type"]]
    data = _decode(raw["data"])
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


#: Called with (kind, plan, record) by every check when set (the grader's recorder in a sandboxed kernel).
_EMITTER: Callable[[str, Any, Any], None] | None = None
#: Set by the trusted replay (grader.replay): checks then take the student's record from the kernel's
#: records instead of running student code, and judge it against a plan computed here.
_REPLAY: Any = None


def _emit(kind: str, plan: Any, record: Any) -> None:
    """Hand plan and record to the grader's recorder, or append them to the file named by $DLCOURSE_CHECK_RECORDS."""
    if _EMITTER is not None:
        try:
            _EMITTER(kind, plan, record)
        except Exception:
            pass
        return
    path = os.environ.get(RECORDS_ENV)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"check": kind, "plan": json.loads(to_json(plan)),
                                 "record": json.loads(to_json(record))}) + "\n")
    except (OSError, TypeError, ValueError):
        pass

def _run_check(kind: str, plan: Any, reference: Any, inputs_of: Callable, record: Callable[[], Any],
               judge: Callable[[Any, Any], Verdict]) -> None:
    """The sequence every check follows: in the kernel, record the student's results and judge them
    (and emit the plan and record for the out-of-kernel grader); under replay, judge what was replayed."""
    if _REPLAY is not None:
        rec = _replayed(kind, plan, reference, inputs_of)
        verdict = rec if isinstance(rec, Verdict) else judge(plan, rec)
    else:
        rec = record()
        verdict = judge(plan, rec)
        _emit(kind, plan, rec)
    verdict.enforce()



def same_inputs(a: Any, b: Any) -> bool:
    """Exact equality of plain data (arrays: shape, dtype and values, NaN equal to NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        try:
            return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        except TypeError:
            return bool(np.array_equal(a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_inputs(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_inputs(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _replayed(kind: str, plan: Any, reference: Any, inputs: Callable[[Any], Any]) -> Verdict | Any:
    """In the trusted replay: the kernel's record for this check, after checking its inputs and provenance.

    Returns the record, or a failing Verdict (missing record, changed inputs, delegation found in the source).
    """
    entry = _REPLAY.take_check(kind)
    if isinstance(entry, str):
        return Verdict(False, message=entry)
    kernel_plan, record = entry
    if not same_inputs(inputs(kernel_plan), _decode(_encode(inputs(plan)))):
        return Verdict(False, message=(
            "the inputs this check used inside your notebook differ from the grader's own: something in the notebook "
            "changed NumPy's random numbers, the check's arguments or the grader itself, so the result cannot count"))
    delegated = _REPLAY.delegation(reference)
    if delegated:
        return Verdict(False, message=delegated)
    return record


# --------------------------------------------------------------------------- provenance (delegation)


def _code_objects(obj: Any) -> list[Any]:
    """Code objects of a function, or of the functions defined in a class and its dlcore bases."""
    codes = []
    if inspect.isclass(obj):
        for klass in obj.__mro__:
            if klass is object or _qualname(klass) in _BASES_ALLOWED:
                continue
            for value in vars(klass).values():
                fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
                fn = inspect.unwrap(fn) if callable(fn) else fn
                if hasattr(fn, "__code__"):
                    codes.append(fn.__code__)
    else:
        fn = inspect.unwrap(obj)
        if hasattr(fn, "__code__"):
            codes.append(fn.__code__)
    return codes


def _provenance(student: Any, reference: Any) -> dict[str, Any]:
    """Where the student's code comes from: plain data, judged by :func:`_delegation`."""
    dl = _dlcore_dir()
    info: dict[str, Any] = {"name": _short(student), "module": str(getattr(student, "__module__", "") or ""),
                            "is_reference": student is reference, "subclasses_reference": False,
                            "dlcore_bases": [], "dlcore_code": [], "calls_reference": []}
    if inspect.isclass(student) and inspect.isclass(reference):
        info["subclasses_reference"] = issubclass(student, reference) and student is not reference
    if inspect.isclass(student):
        info["dlcore_bases"] = [_qualname(k) for k in student.__mro__[1:]
                                if str(k.__module__).startswith("dlcore") and _qualname(k) not in _BASES_ALLOWED]
    for code in _code_objects(student):
        filename = os.path.abspath(code.co_filename)
        if filename.startswith(dl + os.sep):
            info["dlcore_code"].append(f"{code.co_name} (from {os.path.relpath(filename, os.path.dirname(dl))})")
    return info


class _watch_calls:  # noqa: N801 - used like a function: ``with _watch_calls(reference, hits):``
    """Record calls into the reference's own code while the student's code runs (re-entrant)."""

    def __init__(self, reference: Any, hits: list[str]) -> None:
        self.codes = set(_code_objects(reference))
        self.hits = hits
        self.old: Any = None

    def _profiler(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in self.codes and frame.f_code.co_name not in self.hits:
            self.hits.append(frame.f_code.co_name)

    def __enter__(self) -> _watch_calls:
        self.old = sys.getprofile()
        sys.setprofile(self._profiler)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.setprofile(self.old)


def _delegation(prov: dict[str, Any], reference_name: str) -> str | None:
    name = prov.get("name", "your code")
    ref = reference_name.rsplit(".", 1)[-1]
    why = None
    if prov.get("is_reference"):
        why = f"{name} is dlcore's own {ref} (imported, not written)"
    elif prov.get("module", "").startswith("dlcore"):
        why = f"{name} is defined in dlcore ({prov['module']}), not in your notebook"
    elif prov.get("subclasses_reference"):
        why = f"{name} subclasses dlcore's {ref}"
    elif prov.get("dlcore_bases"):
        why = f"{name} inherits from {', '.join(prov['dlcore_bases'])}"
    elif prov.get("dlcore_code"):
        why = f"{name}'s code comes from dlcore: {', '.join(prov['dlcore_code'])}"
    elif prov.get("calls_reference"):
        why = f"{name} calls dlcore's {ref} ({', '.join(prov['calls_reference'])}) instead of computing the result"
    if why is None:
        return None
    return (f"{name} uses dlcore's reference implementation: {why}. "
            f"This exercise asks you to write {ref} yourself, so it scores zero while it delegates to dlcore. "
            "You may use NumPy, and dlcore for other things.")


# --------------------------------------------------------------------------- layers


@dataclass
class LayerPlan:
    """Seeded inputs and parameters, and the reference's outputs and gradients on them."""

    reference: str
    name: str
    args: list
    kwargs: dict
    is_loss: bool
    n_inputs: int
    params: dict
    cases: list  # each: {"inputs": [...], "dy": array|None, "out": ..., "dx": [...], "grads": {...}}
    check_numeric: bool = True
    seed: int = 0


@dataclass
class LayerRecord:
    """What the student's layer did on a plan's inputs (plain data)."""

    provenance: dict = field(default_factory=dict)
    build_error: str | None = None
    param_shapes: dict | None = None
    param_error: str | None = None
    cases: list = field(default_factory=list)
    cached_attrs: list = field(default_factory=list)


def _is_loss_class(cls: Any) -> bool:
    try:
        from dlcore.nn.base import Loss
    except ImportError:  # pragma: no cover - dlcore is part of the project
        return False
    return inspect.isclass(cls) and issubclass(cls, Loss)


def _float_like(a: np.ndarray) -> bool:
    return a.dtype.kind == "f"


def plan_layer(reference: Any, *, args: Sequence[Any] = (), kwargs: dict | None = None,
               shapes: Sequence[Sequence[int]] = ((4, 5),), seed: int = 0, n_classes: int | None = None,
               inputs: Sequence[Any] | None = None, check_numeric: bool = True) -> LayerPlan:
    """Build the reference on seeded float64 parameters and run it on seeded inputs (one case per shape)."""
    ref_cls = resolve_reference(reference)
    kwargs = dict(kwargs or {})
    rng = np.random.default_rng(seed)
    is_loss = _is_loss_class(ref_cls)
    with _quiet(stdout=True):
        ref = ref_cls(*args, **kwargs)
        params = {}
        for key, value in getattr(ref, "params", {}).items():
            v = np.asarray(_as_array(value))
            params[key] = (rng.standard_normal(v.shape) * 0.5).astype("float64") if _float_like(v) else v.copy()
        if inputs is None:
            cases_in = []
            for shape in shapes:
                shape = tuple(int(s) for s in shape)
                if is_loss:
                    scores = rng.standard_normal(shape)
                    cross_entropy = n_classes is not None or "CrossEntropy" in _short(ref_cls)
                    if cross_entropy and len(shape) == 2:
                        k = int(n_classes or shape[1])
                        target = rng.integers(0, k, size=shape[0]).astype("int64")
                    else:
                        target = rng.standard_normal(shape)
                    cases_in.append([scores, target])
                else:
                    z = rng.standard_normal(shape)
                    cases_in.append([np.where(z >= 0, 1.0, -1.0) * (np.abs(z) + 0.05)])  # away from kinks at 0
        else:
            cases_in = [[np.array(a, dtype="float64") if np.asarray(a).dtype.kind == "f" else np.array(a)
                         for a in (c if isinstance(c, (tuple, list)) else (c,))] for c in inputs]
        cases = []
        for ins in cases_in:
            layer = ref_cls(*args, **kwargs)
            for key, value in params.items():
                layer.params[key] = value.copy()
            out = _as_array(layer.forward(*[a.copy() for a in ins]))
            if is_loss:
                dy = None
                dx = layer.backward()
            else:
                dy = rng.standard_normal(out.shape)
                dx = layer.backward(dy.copy())
            dx_list = [np.asarray(_as_array(d)) for d in (dx if isinstance(dx, tuple) else (dx,))]
            grads = {k: np.asarray(_as_array(layer.grads[k])) for k in params if k in layer.grads}
            case = {"inputs": ins, "dy": dy, "out": np.asarray(out, dtype="float64"), "dx": dx_list, "grads": grads}
            if check_numeric:
                # Central differences of the reference's forward: the student's forward must match it, so
                # this is also the numerical gradient of the student's forward, computed where it can be trusted.
                case["numeric"], _ = _numeric_gradients(ref_cls, args, kwargs, params, is_loss, case)
            cases.append(case)
    n_inputs = len(cases[0]["inputs"]) if cases else 1
    return LayerPlan(reference=_qualname(ref_cls), name=_short(ref_cls), args=list(args), kwargs=kwargs,
                     is_loss=is_loss, n_inputs=n_inputs, params=params, cases=cases,
                     check_numeric=check_numeric, seed=seed)


def _scalar(v: Any) -> float:
    a = _as_array(v)
    if a is None or a.size != 1:
        raise TypeError(f"expected a single number, got {_describe(v)}")
    return float(a.reshape(()))


def _call_backward(layer: Any, is_loss: bool, dy: np.ndarray | None) -> Any:
    if not is_loss:
        return layer.backward(dy)
    try:
        return layer.backward()
    except TypeError as exc:
        if "argument" not in str(exc):
            raise
        return layer.backward(1.0)


def record_layer(student: Any, plan: LayerPlan) -> LayerRecord:
    """Run the student's layer class on the plan's inputs and parameters; capture everything as data."""
    rec = LayerRecord()
    ref_cls = resolve_reference(plan.reference)
    rec.provenance = _provenance(student, ref_cls)
    hits: list[str] = []
    with _quiet(stdout=True):
        for ci, case in enumerate(plan.cases):
            watch = _watch_calls(ref_cls, hits) if ci == 0 else contextlib.nullcontext()
            out: dict[str, Any] = {"forward": None, "forward_error": None, "mutated": [], "backward": None,
                                   "backward_error": None, "dy_mutated": False, "grads": {}}
            rec.cases.append(out)
            try:
                with watch:
                    layer = student(*copy.deepcopy(plan.args), **copy.deepcopy(plan.kwargs))
            except Exception as exc:
                rec.build_error = _error_text(exc)
                break
            params = getattr(layer, "params", None)
            if plan.params:
                if not isinstance(params, dict):
                    rec.param_error = "has no params dict (self.params = {name: array})"
                    break
                rec.param_shapes = {k: list(np.shape(_as_array(v))) if _as_array(v) is not None else None
                                    for k, v in params.items()}
                if set(params) != set(plan.params) or any(
                        tuple(rec.param_shapes[k] or ()) != plan.params[k].shape for k in plan.params):
                    break
                for key, value in plan.params.items():
                    params[key] = value.copy()
                if ci == 0:
                    for attr, value in getattr(layer, "__dict__", {}).items():
                        if isinstance(value, np.ndarray) and attr not in ("params", "grads") and any(
                                value.shape == p.shape and value is not params[k] for k, p in plan.params.items()):
                            rec.cached_attrs.append(attr)
            ins = [a.copy() for a in case["inputs"]]
            try:
                with watch:
                    y = layer.forward(*ins)
            except Exception as exc:
                out["forward_error"] = _error_text(exc)
                continue
            out["forward"] = _as_array(y) if _as_array(y) is not None else repr(type(y).__name__)
            out["mutated"] = [i for i, (a, b) in enumerate(zip(ins, case["inputs"], strict=True))
                              if a.shape != b.shape or not np.array_equal(a, b)]
            dy = None if case["dy"] is None else case["dy"].copy()
            try:
                with watch:
                    dx = _call_backward(layer, plan.is_loss, dy)
            except Exception as exc:
                out["backward_error"] = _error_text(exc)
                continue
            out["dy_mutated"] = dy is not None and not np.array_equal(dy, case["dy"])
            dx_tuple = dx if isinstance(dx, tuple) else (dx,)
            out["backward"] = [_as_array(d) if _as_array(d) is not None else None for d in dx_tuple]
            grads = getattr(layer, "grads", {}) or {}
            out["grads"] = {k: _as_array(v) for k, v in grads.items() if _as_array(v) is not None}
    rec.provenance["calls_reference"] = hits
    return rec


def _numeric_gradients(cls: Any, args: Sequence[Any], kwargs: dict, params: dict, is_loss: bool,
                       case: dict) -> tuple[dict, str | None]:
    """Central-difference gradients of ``cls``'s forward (L = Σ forward ⊙ dy, or the loss) at a case's point."""
    try:
        layer = cls(*copy.deepcopy(list(args)), **copy.deepcopy(dict(kwargs)))
        for key, value in params.items():
            layer.params[key] = value.copy()
        ins = [a.copy() for a in case["inputs"]]
        dy = case["dy"]

        def loss() -> float:
            y = layer.forward(*ins)
            return _scalar(y) if is_loss else float(np.sum(np.asarray(_as_array(y), dtype="float64") * dy))

        numeric = {}
        targets = [i for i, a in enumerate(ins) if _float_like(a)]
        if is_loss:
            targets = targets[:1]
        for i in targets:
            numeric["dx" if len(targets) == 1 else f"dx{i + 1}"] = numerical_gradient(loss, ins[i])
        for key in params:
            if _float_like(np.asarray(_as_array(layer.params[key]))):
                numeric[key] = numerical_gradient(loss, layer.params[key])
        return numeric, None
    except Exception as exc:
        return {}, _error_text(exc)


def _grad_label(key: str, n_float_inputs: int, is_loss: bool) -> str:
    if key.startswith("dx"):
        return "the gradient returned by backward" + ("" if n_float_inputs == 1 else f" ({key})")
    return f"the gradient d{key} stored in grads[{key!r}]"


def _incomplete(name: str, got: int, want: int) -> str:
    """A record must answer every case of its plan: fewer (or more) results never pass."""
    return f"{name}: the results of {got} of {want} test cases were recorded, so the exercise cannot be checked"


def judge_layer(plan: LayerPlan, rec: LayerRecord, *, rtol: float = 1e-7, numeric_rtol: float = 1e-5) -> Verdict:
    """Compare a record with the plan; the first failing case is reported with all its problems."""
    name = plan.name
    formulas = _FORMULAS.get(name, {})
    student = rec.provenance.get("name", "your layer")
    delegated = _delegation(rec.provenance, plan.reference)
    if delegated:
        return Verdict(False, message=delegated)
    ctor = f"{student}({', '.join([repr(a) for a in plan.args] + [f'{k}={v!r}' for k, v in plan.kwargs.items()])})"
    if rec.build_error:
        return Verdict(False, message=f"{student}: creating the layer as {ctor} failed with {rec.build_error}")
    if rec.param_error:
        return Verdict(False, message=f"{student} {rec.param_error}; the reference has params {sorted(plan.params)}")
    if plan.params and rec.param_shapes is not None:
        got_keys, want_keys = sorted(rec.param_shapes), sorted(plan.params)
        if got_keys != want_keys:
            return Verdict(False, message=(
                f"{student}.params has the keys {got_keys}, expected {want_keys}: use exactly these names "
                f"(e.g. self.params = {{{', '.join(repr(k) + ': ...' for k in want_keys)}}})"))
        for key in want_keys:
            got_shape, want = tuple(rec.param_shapes[key] or ()), plan.params[key].shape
            if got_shape != want:
                cause = likely_cause(np.zeros(got_shape), np.zeros(want), quantity=f"params[{key!r}]")
                return Verdict(False, message=(
                    f"{student}: params[{key!r}] created by {ctor} has shape {got_shape}, expected {want}"
                    + (f"\n  likely cause: {cause}" if cause else "")))
    if len(rec.cases) != len(plan.cases):
        return Verdict(False, message=_incomplete(student, len(rec.cases), len(plan.cases)))
    worst = 0.0
    notes: list[str] = []
    n_float = sum(1 for a in (plan.cases[0]["inputs"] if plan.cases else []) if _float_like(a))
    if plan.is_loss:
        n_float = 1
    for case, got in zip(plan.cases, rec.cases, strict=True):
        shapes = ", ".join(str(tuple(a.shape)) for a in case["inputs"])
        context = f"(checked on inputs of shape {shapes}, seed {plan.seed})"
        batch = case["inputs"][0].shape[0] if case["inputs"][0].ndim else None
        problems: list[str] = []
        if got["forward_error"]:
            problems.append(f"forward raised {got['forward_error']}")
        else:
            y = got["forward"]
            if isinstance(y, str):
                problems.append(f"forward returned a {y}, expected {_describe(case['out'])}")
            else:
                y_cmp = y.reshape(()) if plan.is_loss and getattr(y, "size", 0) == 1 else y
                p = compare("the output of forward", y_cmp, case["out"], rtol=rtol, batch=batch,
                            expect_dtype=None if plan.is_loss else "float64")
                if p:
                    problems.append(p + (f"\n  formula: {formulas['forward']}" if "forward" in formulas else ""))
                    if rec.cached_attrs:
                        copies = ", self.".join(rec.cached_attrs)
                        problems.append(
                            f"note: your layer keeps copies of its parameters in self.{copies}; "
                            "read them from self.params[...] when you use them (the checker loads new values there)")
                else:
                    worst = max(worst, _rel_error(np.asarray(y_cmp, dtype="float64"), case["out"])[0])
            for i in got["mutated"]:
                problems.append(f"forward modified its input #{i + 1} in place; work on a copy "
                                "(e.g. x = x.copy() or out = np.maximum(x, 0))")
        if not problems:
            if got["backward_error"]:
                problems.append(f"backward raised {got['backward_error']}")
            else:
                problems += _judge_gradients(plan, case, got, n_float, batch, rtol, numeric_rtol, formulas, notes)
                for key in ("backward",):
                    for g, e in zip(got[key] or [], case["dx"], strict=False):
                        if g is not None and g.shape == e.shape:
                            worst = max(worst, _rel_error(g, e)[0])
                for k, e in case["grads"].items():
                    g = got["grads"].get(k)
                    if g is not None and g.shape == e.shape:
                        worst = max(worst, _rel_error(g, e)[0])
                if got["dy_mutated"]:
                    problems.append("backward modified dy (its argument) in place; compute a new array instead")
        if problems:
            head = f"{student} does not match dlcore's {name} {context}:"
            if len(problems) > _MAX_PROBLEMS:
                problems = problems[:_MAX_PROBLEMS] + [f"… and {len(problems) - _MAX_PROBLEMS} more"]
            body = "\n".join("- " + p.replace("\n", "\n  ") for p in problems)
            return Verdict(False, message=f"{head}\n{body}", worst=worst)
    parts = ["forward", "dscores" if plan.is_loss else "dx"] + [f"d{k}" for k in plan.params]
    summary = (f"{student}: {', '.join(parts)} match the reference on {len(plan.cases)} input shape(s) "
               f"(worst rel. error {worst:.1e})")
    if notes:
        summary += " — " + "; ".join(notes)
    return Verdict(True, summary=summary, worst=worst)


def _judge_gradients(plan: LayerPlan, case: dict, got: dict, n_float: int, batch: int | None, rtol: float,
                     numeric_rtol: float, formulas: dict, notes: list[str]) -> list[str]:
    problems = []
    expected: dict[str, tuple[np.ndarray, Any]] = {}
    back = got["backward"] or []
    float_idx = [i for i, a in enumerate(case["inputs"]) if _float_like(a)]
    if plan.is_loss:
        float_idx = float_idx[:1]
    for k, i in enumerate(float_idx):
        key = "dx" if len(float_idx) == 1 else f"dx{k + 1}"
        e = case["dx"][i] if i < len(case["dx"]) else case["dx"][k]
        g = back[i] if i < len(back) else (back[k] if k < len(back) else None)
        expected[key] = (e, g)
    missing = [k for k in case["grads"] if k not in got["grads"]]
    for k in missing:
        problems.append(f"backward did not set grads[{k!r}] (store dL/d{k} there: self.grads[{k!r}] = ...)")
    for k, e in case["grads"].items():
        if k in got["grads"]:
            expected[k] = (e, got["grads"][k])
    # Only the plan's numerical gradients (of the reference's forward, which the student's forward matched,
    # computed by the grader) are trusted; a record never supplies its own.
    numeric = case.get("numeric") or {}
    for key, (e, g) in expected.items():
        label = _grad_label(key, n_float, plan.is_loss)
        candidates = []
        if key.startswith("dx") and case["dy"] is not None:
            candidates.append((case["dy"], "backward returns dy unchanged: multiply it by the local derivative "
                                           "(the chain rule dL/dx = dL/dy · ∂y/∂x)"))
        problem = compare(label, g, e, rtol=max(rtol, 1e-7), batch=batch, candidates=candidates,
                          quantity=("dL/dx" if key.startswith("dx") else f"d{key}"), expect_dtype="float64")
        n = numeric.get(key)
        num_ok = None
        if n is not None and g is not None and _as_array(g) is not None and np.shape(g) == n.shape:
            num_err, _ = _rel_error(np.asarray(g, dtype="float64"), n)
            num_ok = num_err <= numeric_rtol
        if problem:
            formula = formulas.get(key if not key.startswith("dx") else "dx")
            if num_ok:
                # The student agrees with the numerical gradient of their own (correct) forward: the
                # reference disagrees, so the reference is at fault and must not cost the student.
                notes.append(f"dlcore's reference {key} disagrees with the numerical gradient; please tell the "
                             "instructor (your result was accepted)")
                continue
            if formula:
                problem += f"\n  formula: {formula}"
            if num_ok is False:
                problem += "\n  (your gradient also disagrees with the numerical gradient of your own forward)"
            problems.append(problem)
        elif num_ok is False:
            num_err, idx = _rel_error(np.asarray(g, dtype="float64"), n)
            problems.append(
                f"{label} matches dlcore's reference but not the numerical gradient (relative error {num_err:.1e} "
                f"at {idx}): this points at a bug in the reference or the checker; please tell the instructor")
    return problems


def check_layer(student: Any, reference: Any, *, args: Sequence[Any] = (), kwargs: dict | None = None,
                shapes: Sequence[Sequence[int]] = ((4, 5),), seed: int = 0, n_classes: int | None = None,
                inputs: Sequence[Any] | None = None, check_numeric: bool = True) -> None:
    """Compare the student's layer CLASS with dlcore's ``reference`` (a class or its name in dlcore.nn).

    Both are built with ``args``/``kwargs``; the student's params dict receives the reference's
    (seeded, float64) parameters; both run forward and backward on seeded inputs of every shape in
    ``shapes`` (for losses: scores and integer labels with ``n_classes`` classes), and the student's
    gradients are also checked against central differences of the student's own forward.
    """
    __tracebackhide__ = True
    with _quiet():
        plan = plan_layer(reference, args=args, kwargs=kwargs, shapes=shapes, seed=seed, n_classes=n_classes,
                          inputs=inputs, check_numeric=check_numeric)
        _run_check("layer", plan, resolve_reference(reference), _layer_inputs,
                   lambda: record_layer(student, plan), judge_layer)


def _layer_inputs(plan: LayerPlan) -> Any:
    return [plan.args, plan.kwargs, plan.params, [[c["inputs"], c["dy"]] for c in plan.cases]]


# --------------------------------------------------------------------------- functions


@dataclass
class FunctionPlan:
    """Argument tuples and the reference's results (and its in-place changes to the arguments)."""

    reference: str
    name: str
    cases: list  # each: {"args": [...], "out": ..., "args_after": [...] , "error": str|None}
    rtol: float = 1e-7


@dataclass
class FunctionRecord:
    provenance: dict = field(default_factory=dict)
    cases: list = field(default_factory=list)  # each: {"out": ..., "args_after": [...], "error": str|None}


def _freeze(v: Any) -> Any:
    """Plain-data copy of a value (arrays, numbers, strings, tuples/lists of them)."""
    if isinstance(v, tuple):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, list):
        return [_freeze(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.copy()
    if hasattr(v, "__array_namespace__"):
        return _as_array(v)
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (int, float, complex, str, bool)):
        return v
    if callable(v) or isinstance(v, dict):
        return _NOT_DATA
    a = _as_array(v)
    return a if a is not None else _NOT_DATA


#: Stands for an argument or result that is not plain data (a function, a model object): not compared.
_NOT_DATA = "<not compared: not an array or number>"


def _copy_arg(v: Any) -> Any:
    try:
        return copy.deepcopy(v)
    except Exception:  # some objects cannot be copied; pass them as they are
        return v


def plan_function(reference: Any, *, cases: Sequence[Sequence[Any]], rtol: float = 1e-7,
                  name: str | None = None) -> FunctionPlan:
    ref = resolve_reference(reference)
    planned = []
    with _quiet(stdout=True):
        for args in cases:
            args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
            call_args = tuple(_copy_arg(a) for a in args)
            try:
                out, error = _freeze(ref(*call_args)), None
            except Exception as exc:  # the reference rejects this input: the student must raise too
                out, error = None, type(exc).__name__
            planned.append({"args": [_copy_arg(a) for a in args], "out": out,
                            "args_after": [_freeze(a) for a in call_args], "error": error})
    return FunctionPlan(reference=_qualname(ref), name=name or _short(ref), cases=planned, rtol=rtol)


def record_function(student_fn: Any, plan: FunctionPlan, *, reference: Any = None) -> FunctionRecord:
    ref = reference if reference is not None else resolve_reference(plan.reference)
    rec = FunctionRecord(provenance=_provenance(student_fn, ref))
    hits: list[str] = []
    with _quiet(stdout=True):
        for ci, case in enumerate(plan.cases):
            args = [_copy_arg(a) for a in case["args"]]
            watch = _watch_calls(ref, hits) if ci == 0 else contextlib.nullcontext()
            try:
                with watch:
                    out, error = _freeze(student_fn(*args)), None
            except Exception as exc:
                out, error = None, _error_text(exc)
            rec.cases.append({"out": out, "args_after": [_freeze(a) for a in args], "error": error})
    rec.provenance["calls_reference"] = hits
    return rec


def _show_args(args: Sequence[Any]) -> str:
    parts = []
    for a in args:
        if isinstance(a, np.ndarray):
            small = a.ndim <= 1 and a.size <= 8
            parts.append(np.array2string(a, precision=4, separator=", ") if small else f"<array of shape {a.shape}>")
        elif callable(a):
            parts.append(getattr(a, "__name__", type(a).__name__))
        else:
            parts.append(_fmt(a) if not isinstance(a, (list, tuple)) else _describe(a))
    return ", ".join(parts)


def judge_function(plan: FunctionPlan, rec: FunctionRecord) -> Verdict:
    name = plan.name
    delegated = _delegation(rec.provenance, plan.reference)
    if delegated:
        return Verdict(False, message=delegated)
    if len(rec.cases) != len(plan.cases):
        return Verdict(False, message=_incomplete(name, len(rec.cases), len(plan.cases)))
    worst = 0.0
    for ci, (case, got) in enumerate(zip(plan.cases, rec.cases, strict=True)):
        where = f"{name}({_show_args(case['args'])}) [case {ci + 1} of {len(plan.cases)}]"
        if case["error"]:
            if got["error"] is None:
                return Verdict(False, message=f"{where}: expected an error ({case['error']}) for this input, "
                                              f"but your function returned {_describe(got['out'])}")
            continue
        if got["error"]:
            return Verdict(False, message=f"{where} raised {got['error']}")
        batch = None
        first = next((a for a in case["args"] if isinstance(a, np.ndarray) and a.ndim >= 1), None)
        if first is not None and first.ndim == 2:
            batch = first.shape[0]
        problem = compare("the result", got["out"], case["out"], rtol=plan.rtol, batch=batch)
        if problem:
            return Verdict(False, message=f"{where}:\n- " + problem.replace("\n", "\n  "), worst=worst)
        if len(got["args_after"]) != len(case["args"]):
            return Verdict(False, message=f"{where}: the record of the arguments after the call is incomplete")
        for i, (before, after_ref, after_stu) in enumerate(
                zip(case["args"], case["args_after"], got["args_after"], strict=True)):
            ref_changed = compare("", after_ref, _freeze(before), rtol=0.0) is not None
            stu_problem = compare(f"argument #{i + 1} after the call", after_stu, after_ref, rtol=plan.rtol)
            if stu_problem:
                if ref_changed:
                    return Verdict(False, message=f"{where}: the argument #{i + 1} must be updated in place:\n- "
                                                  + stu_problem.replace("\n", "\n  "))
                return Verdict(False, message=f"{where}: your function modified its argument #{i + 1} in place; "
                                              "work on a copy (e.g. w = w.copy()) or return a new array")
        ga, ea = _as_array(got["out"]) if not isinstance(got["out"], tuple) else None, _as_array(case["out"])
        if ga is not None and ea is not None and ga.shape == ea.shape and ea.dtype.kind == "f":
            worst = max(worst, _rel_error(ga.astype("float64"), ea)[0])
    return Verdict(True, summary=f"{name}: all {len(plan.cases)} cases match the reference "
                                 f"(worst rel. error {worst:.1e})", worst=worst)


def check_function(student_fn: Callable[..., Any], reference_fn: Any, *, cases: Sequence[Sequence[Any]],
                   rtol: float = 1e-7, name: str | None = None) -> None:
    """Call the student's function and the reference on every argument tuple in ``cases`` and compare.

    Outputs may be arrays, numbers or tuples of them. Arguments the reference updates in place must
    be updated the same way; arguments it leaves alone must not be modified.
    """
    __tracebackhide__ = True
    with _quiet():
        ref = resolve_reference(reference_fn)
        if _REPLAY is not None:
            plan = plan_function(ref, cases=cases, rtol=rtol, name=name or _REPLAY.student_label())
            record = _replayed("function", plan, ref, _function_inputs)
            if isinstance(record, FunctionRecord) and not name:
                plan.name = str(record.provenance.get("name") or plan.name)[:80]
            verdict = record if isinstance(record, Verdict) else judge_function(plan, record)
        else:
            if not callable(student_fn):
                _fail(f"{name or 'the exercise'}: expected a function, got {_describe(student_fn)}")
            plan = plan_function(ref, cases=cases, rtol=rtol, name=name or _short(student_fn))
            record = record_function(student_fn, plan, reference=ref)
            verdict = judge_function(plan, record)
            _emit("function", plan, record)
        verdict.enforce()


def _function_inputs(plan: FunctionPlan) -> Any:
    return [c["args"] for c in plan.cases]


# --------------------------------------------------------------------------- gates


@dataclass
class GatePlan:
    """Add/Mul gates on numbers: (x, y, dout) per case and the reference's forward and (dx, dy)."""

    reference: str
    name: str
    cases: list  # each: {"x", "y", "dout", "z", "d": (dx, dy)}


@dataclass
class GateRecord:
    provenance: dict = field(default_factory=dict)
    cases: list = field(default_factory=list)  # each: {"z", "d", "error"}


def plan_gate(reference: Any, *, cases: Sequence[Sequence[Any]]) -> GatePlan:
    ref_cls = resolve_reference(reference)
    douts = (1.0, 2.5, -0.75)
    planned = []
    with _quiet(stdout=True):
        for ci, case in enumerate(cases):
            x, y, *rest = case
            dout = rest[0] if rest else douts[ci % len(douts)]
            ref = ref_cls()
            z = ref.forward(x, y)
            d = ref.backward(dout)
            planned.append({"x": _freeze(x), "y": _freeze(y), "dout": _freeze(dout), "z": _freeze(z),
                            "d": tuple(_freeze(v) for v in d)})
    return GatePlan(reference=_qualname(ref_cls), name=_short(ref_cls), cases=planned)


def record_gate(student_cls: Any, plan: GatePlan) -> GateRecord:
    ref_cls = resolve_reference(plan.reference)
    rec = GateRecord(provenance=_provenance(student_cls, ref_cls))
    hits: list[str] = []
    with _quiet(stdout=True):
        for ci, case in enumerate(plan.cases):
            watch = _watch_calls(ref_cls, hits) if ci == 0 else contextlib.nullcontext()
            try:
                with watch:
                    gate = student_cls()
                    z = gate.forward(case["x"], case["y"])
                    d = gate.backward(case["dout"])
                rec.cases.append({"z": _freeze(z), "d": _freeze(d), "error": None})
            except Exception as exc:
                rec.cases.append({"z": None, "d": None, "error": _error_text(exc)})
    rec.provenance["calls_reference"] = hits
    return rec


def judge_gate(plan: GatePlan, rec: GateRecord) -> Verdict:
    name = str(rec.provenance.get("name") or plan.name)
    delegated = _delegation(rec.provenance, plan.reference)
    if delegated:
        return Verdict(False, message=delegated)
    for ci, (case, got) in enumerate(zip(plan.cases, rec.cases, strict=True)):
        x, y, dout = case["x"], case["y"], case["dout"]
        where = (f"{name}: forward({_fmt(x)}, {_fmt(y)}), backward({_fmt(dout)}) "
                 f"[case {ci + 1} of {len(plan.cases)}]")
        if got["error"]:
            return Verdict(False, message=f"{where} raised {got['error']}")
        z, d, d_ref = got["z"], got["d"], tuple(case["d"])
        problem = compare("forward's result", z, case["z"]) or compare("backward's (dx, dy)", d, d_ref)
        if problem:
            try:
                mine = [_scalar(v) for v in d] if isinstance(d, (tuple, list)) and len(d) == 2 else None
                theirs = [_scalar(v) for v in d_ref]
            except (TypeError, ValueError):
                mine = None
            if mine is not None and problem.startswith("backward"):
                if np.allclose(mine, theirs[::-1]):
                    problem += "\n  likely cause: dx and dy are swapped"
                elif _scalar(dout) != 1 and np.allclose([v * _scalar(dout) for v in mine], theirs):
                    problem += "\n  likely cause: backward ignores dout; multiply the local derivative by dout"
            return Verdict(False, message=f"{where}:\n- " + problem.replace("\n", "\n  "))
    if len(rec.cases) != len(plan.cases):
        return Verdict(False, message=_incomplete(name, len(rec.cases), len(plan.cases)))
    return Verdict(True, summary=f"{name}: forward and backward match the reference on {len(plan.cases)} cases")


def _gate_inputs(plan: GatePlan) -> Any:
    return [[c["x"], c["y"], c["dout"]] for c in plan.cases]


def check_gate(student_cls: Any, reference: Any, *, cases: Sequence[Sequence[Any]]) -> None:
    """Add/Mul gates on numbers: forward(x, y) and backward(dout) -> (dx, dy) against the reference.

    A case is (x, y) or (x, y, dout); without dout, several upstream gradients are tried so that a
    backward that ignores dout cannot pass.
    """
    __tracebackhide__ = True
    with _quiet():
        ref_cls = resolve_reference(reference)
        plan = plan_gate(ref_cls, cases=cases)
        _run_check("gate", plan, ref_cls, _gate_inputs, lambda: record_gate(student_cls, plan), judge_gate)


# --------------------------------------------------------------------------- numerical gradient


def _ng_cases() -> list[tuple[str, Callable[[np.ndarray], float], Callable[[np.ndarray], np.ndarray], np.ndarray]]:
    rng = np.random.default_rng(12)
    a = rng.standard_normal((2, 3))
    return [
        ("f(x) = Σ x²", lambda x: float(np.sum(x ** 2)), lambda x: 2 * x, rng.standard_normal(3)),
        ("f(x) = Σ x·sin(x)", lambda x: float(np.sum(x * np.sin(x))), lambda x: np.sin(x) + x * np.cos(x),
         rng.standard_normal((2, 3))),
        ("f(x) = exp(x₀)", lambda x: float(np.exp(x[0])), lambda x: np.exp(x), rng.standard_normal(1)),
        ("f(x) = Σ tanh(x)·A", lambda x: float(np.sum(np.tanh(x) * a)), lambda x: (1 - np.tanh(x) ** 2) * a,
         rng.standard_normal((2, 3))),
    ]


@dataclass
class NumGradPlan:
    """The test functions (by index into _ng_cases), their points and their analytic gradients."""

    reference: str
    cases: list  # each: {"label", "x", "expected", "dlcore"}


@dataclass
class NumGradRecord:
    provenance: dict = field(default_factory=dict)
    cases: list = field(default_factory=list)  # each: {"got", "x_after", "error"}


def plan_numerical_gradient() -> NumGradPlan:
    cases = []
    with _quiet(stdout=True):
        for label, fun, grad, x0 in _ng_cases():
            x_dl = x0.copy()
            dl = np.asarray(numerical_gradient(lambda _x=x_dl, _fun=fun: _fun(_x), x_dl))
            cases.append({"label": label, "x": x0.copy(), "expected": grad(x0), "dlcore": dl})
    return NumGradPlan(reference=_qualname(numerical_gradient), cases=cases)


def record_numerical_gradient(student_fn: Any, plan: NumGradPlan) -> NumGradRecord:
    rec = NumGradRecord(provenance=_provenance(student_fn, numerical_gradient))
    hits: list[str] = []
    funs = _ng_cases()
    with _quiet(stdout=True):
        for ci, case in enumerate(plan.cases):
            fun = funs[ci][1]
            x = np.array(case["x"], dtype="float64")

            def f(*given: Any, _x: np.ndarray = x, _fun: Callable = fun) -> float:
                return _fun(np.asarray(given[0], dtype="float64") if given else _x)

            try:
                with _watch_calls(numerical_gradient, hits) if ci == 0 else contextlib.nullcontext():
                    got = student_fn(f, x)
                rec.cases.append({"got": _freeze(got), "x_after": x.copy(), "error": None})
            except Exception as exc:
                rec.cases.append({"got": None, "x_after": x.copy(), "error": _error_text(exc)})
    rec.provenance["calls_reference"] = hits
    return rec


def judge_numerical_gradient(plan: NumGradPlan, rec: NumGradRecord) -> Verdict:
    name = str(rec.provenance.get("name") or "numerical_gradient")
    delegated = _delegation(rec.provenance, plan.reference)
    if delegated:
        return Verdict(False, message=delegated)
    worst = 0.0
    for case, got in zip(plan.cases, rec.cases, strict=True):
        x0, expected, dl = case["x"], case["expected"], case["dlcore"]
        where = f"{name} on {case['label']} with x of shape {x0.shape}"
        if got["error"]:
            hint = ("\n  hint: iterate over every index of a multi-dimensional x, e.g. with np.ndindex(*x.shape)"
                    if x0.ndim > 1 else "")
            return Verdict(False, message=f"{where} raised {got['error']}{hint}")
        problem = compare("the gradient", got["got"], expected, rtol=1e-5)
        if problem:
            g = _as_array(got["got"])
            if g is not None and g.shape == expected.shape and case["label"].startswith("f(x) = Σ x²"):
                offset = g - expected
                if np.allclose(offset, offset.flat[0]) and abs(offset.flat[0]) > 1e-9:
                    problem += ("\n  likely cause: a one-sided difference (f(x+h) − f(x))/h; use the central "
                                "difference (f(x+h) − f(x−h)) / 2h")
            return Verdict(False, message=(
                f"{where}:\n- {problem}\n  (dlcore.gradcheck.numerical_gradient gives "
                f"{np.array2string(dl.ravel()[:4], precision=5)}{' …' if dl.size > 4 else ''})"))
        x_after = _as_array(got["x_after"])
        if x_after is None or x_after.shape != x0.shape or not np.allclose(x_after, x0, rtol=0, atol=1e-12):
            change = (f"{np.max(np.abs(x_after - x0)):.1e}" if x_after is not None and x_after.shape == x0.shape
                      else "x changed shape")
            return Verdict(False, message=(f"{where}: x was not restored after the call (worst change {change}); "
                                           "put every entry back to its original value"))
        worst = max(worst, _rel_error(np.asarray(got["got"], dtype="float64"), expected)[0])
    if len(rec.cases) != len(plan.cases):
        return Verdict(False, message=_incomplete(name, len(rec.cases), len(plan.cases)))
    return Verdict(True, summary=f"{name}: matches the analytic gradients of {len(plan.cases)} test functions "
                                 f"(worst rel. error {worst:.1e})", worst=worst)


def _numgrad_inputs(plan: NumGradPlan) -> Any:
    return [[c["label"], c["x"]] for c in plan.cases]


def check_numerical_gradient(student_fn: Callable[..., Any]) -> None:
    """The student's ``numerical_gradient(f, x)`` (central differences) on several functions and shapes.

    ``f`` may be called as ``f()`` (dlcore's convention: x is perturbed in place) or as ``f(x)``.
    The result must match the analytic gradient to 1e-5, and ``x`` must be left as it was.
    """
    __tracebackhide__ = True
    with _quiet():
        plan = plan_numerical_gradient()
        _run_check("numerical_gradient", plan, numerical_gradient, _numgrad_inputs,
                   lambda: record_numerical_gradient(student_fn, plan), judge_numerical_gradient)


# --------------------------------------------------------------------------- values


def check_value(name: str, got: Any, expected: Any, *, rtol: float = 1e-7, hint: str | None = None) -> None:
    """``got`` (a number, array or tuple) equals ``expected`` to relative error ``rtol``."""
    __tracebackhide__ = True
    with _quiet():
        problem = compare(name, _freeze(got), _freeze(expected), rtol=rtol)
        if problem:
            _fail(problem + (f"\n  hint: {hint}" if hint else ""))
        print(f"{OK} {name} is correct")


def check_true(name: str, condition: Any, message: str) -> None:
    """Raise AssertionError(f"{name}: {message}") unless ``condition`` holds."""
    __tracebackhide__ = True
    with _quiet():
        if not bool(condition):
            _fail(f"{name}: {message}")
        print(f"{OK} {name}")


def check_accuracy(name: str, accuracy: float, minimum: float) -> None:
    """The closing experiment: ``accuracy`` (a fraction in [0, 1]) reaches ``minimum``."""
    __tracebackhide__ = True
    with _quiet():
        try:
            acc = float(accuracy)
        except (TypeError, ValueError):
            _fail(f"{name}: expected the accuracy as a number in [0, 1], got {_describe(accuracy)}")
        if not (math.isfinite(acc) and 0.0 <= acc <= 1.0):
            _fail(f"{name}: expected the accuracy as a fraction in [0, 1], got {acc!r}")
        if acc < minimum:
            _fail(
                f"{name}: accuracy {acc:.2%} is below the required {minimum:.2%}. Check the earlier exercises "
                "first (a wrong gradient often still trains, only worse), then the learning rate and the number "
                "of epochs.")
        print(f"{OK} {name}: accuracy {acc:.2%} ≥ {minimum:.2%}")


def __getattr__(name: str) -> Any:
    """``check_<kind>`` for every kind registered in grader/kinds.py's packages (e.g. ``check_optimizer``)."""
    if name.startswith("check_"):
        from grader import kinds
        fn = kinds.helper(name[len("check_"):])
        if fn is not None:
            return fn
    raise AttributeError(f"module 'grader.checks' has no attribute {name!r}")
