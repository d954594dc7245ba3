"""Kernel side of out-of-kernel grading: record what the student's code produced, as plain data.

The grader rewrites every test cell (grader.replay) so that each place where the test code touches
the student's code goes through one of three functions installed into the kernel's namespace:

    __dlc_val__(site, thunk)                 a student value (a name, an attribute, an item)
    __dlc_call__(site, thunk, args, kwargs)  a call into student code; args are evaluated by the test code
    __dlc_check__(site, thunk)               a checks.check_* call: its plan and record are tagged with the site

Each evaluation appends one JSON line to the records file: the value (or the error) and, for calls,
the arguments the test code passed. Nothing here decides anything: the trusted grader process
re-runs the test cell with pristine modules and takes the student's values from these lines
(grader.replay). Student code can change what is written here, which is no more than changing
what its own functions return; it cannot change a verdict.

This module runs inside the student's (sandboxed) kernel; it imports only the standard library
and NumPy, and ``grader.checks`` for the checks' own plan/record serialisation.
"""

from __future__ import annotations

import base64
import json
import math
import traceback
from typing import Any

__all__ = ["install", "encode"]

MAX_RECORD_BYTES = 32 * 2**20   # one value larger than this is recorded as "too large"
MAX_DEPTH = 40
MAX_ITEMS = 200_000

_state: dict[str, Any] = {"fh": None, "site": None, "depth": 0}


class _TooLarge(Exception):
    pass


def _array(a: Any, budget: list[int]) -> dict:
    import numpy as np

    a = np.asarray(a)
    if a.dtype.kind not in "biufcSU" or a.dtype.hasobject or a.dtype.fields is not None:
        try:
            b = np.asarray(a.tolist())
        except Exception:
            return {"__opaque__": f"array of dtype {a.dtype}"}
        if b.dtype.kind not in "biufcSU" or b.shape != a.shape:
            return {"__opaque__": f"array of dtype {a.dtype}"}
        a = b
    budget[0] -= a.nbytes
    if budget[0] < 0:
        raise _TooLarge
    return {"__ndarray__": base64.b64encode(a.tobytes(order="C")).decode("ascii"), "dtype": a.dtype.str,
            "shape": list(a.shape)}


def encode(v: Any, budget: list[int] | None = None, depth: int = 0) -> Any:
    """Plain-data JSON form of a value; anything else becomes {"__opaque__": type name}."""
    import numpy as np

    if budget is None:
        budget = [MAX_RECORD_BYTES]
    if depth > MAX_DEPTH:
        return {"__opaque__": "too deeply nested"}
    t = type(v)
    if v is None or t is bool or t is str and len(v) <= 1_000_000:
        budget[0] -= len(v) if t is str else 1
        return v
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int) and not isinstance(v, np.integer):
        return int(v)
    if isinstance(v, float) and not isinstance(v, np.floating):
        f = float(v)
        return f if math.isfinite(f) else {"__float__": repr(f)}
    if isinstance(v, complex):
        return {"__complex__": [encode(v.real), encode(v.imag)]}
    if isinstance(v, str):
        return {"__opaque__": "a very long string"}
    if isinstance(v, (bytes, bytearray)):
        budget[0] -= len(v)
        if budget[0] < 0:
            raise _TooLarge
        return {"__bytes__": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, np.ndarray):
        return _array(v, budget)
    if isinstance(v, np.generic):
        return _array(np.asarray(v), budget)
    if hasattr(v, "__array_namespace__"):
        try:
            from dlcore import backend
            return _array(np.asarray(backend.to_numpy(v)), budget)
        except Exception:
            return {"__opaque__": t.__name__[:80]}
    if isinstance(v, (list, tuple)) or t.__name__ in ("dict_values", "dict_keys", "dict_items"):
        items = list(v)
        if len(items) > MAX_ITEMS:
            raise _TooLarge
        body = [encode(x, budget, depth + 1) for x in items]
        return {"__tuple__": body} if isinstance(v, tuple) else body
    if isinstance(v, dict):
        if len(v) > MAX_ITEMS:
            raise _TooLarge
        return {"__dict__": [[encode(k, budget, depth + 1), encode(x, budget, depth + 1)] for k, x in v.items()]}
    if isinstance(v, range):
        return {"__range__": [v.start, v.stop, v.step]}
    return {"__opaque__": t.__name__[:80]}


def _safe_encode(v: Any) -> Any:
    try:
        return encode(v)
    except _TooLarge:
        return {"__opaque__": "a value too large to record"}
    except RecursionError:
        return {"__opaque__": "too deeply nested"}
    except Exception as exc:  # the student's object misbehaved while being read
        return {"__opaque__": f"unreadable ({type(exc).__name__})"}


def _error(exc: BaseException) -> dict:
    frames = traceback.extract_tb(exc.__traceback__)
    where = [f"{f.name}, line {f.lineno}: {(f.line or '').strip()[:200]}" for f in frames[-4:]
             if not f.filename.endswith(("recorder.py", "checks.py")) and "__dlc_" not in (f.line or "")]
    try:
        evalue = str(exc)
    except Exception:
        evalue = "(the exception's message could not be read)"
    return {"ename": type(exc).__name__[:80], "evalue": evalue[:2000], "where": where[-3:]}


def _write(entry: dict) -> None:
    fh = _state["fh"]
    if fh is None:
        return
    try:
        fh.write(json.dumps(entry, allow_nan=False) + "\n")
        fh.flush()
    except (OSError, ValueError, TypeError):
        pass


def _val(site: int, thunk: Any) -> Any:
    nested = _state["depth"] > 0
    try:
        value = thunk()
    except BaseException as exc:
        _write({"site": site, "nested": nested, "error": _error(exc)})
        raise
    _write({"site": site, "nested": nested, "value": _safe_encode(value)})
    return value


def _call(site: int, thunk: Any, args: list, kwargs: list) -> Any:
    """args: [(compare, starred, value)], kwargs: [(compare, name or None for **, value)]."""
    nested = _state["depth"] > 0
    pos: list[Any] = []
    kw: dict[str, Any] = {}
    compared: dict[str, Any] = {}
    try:
        for i, (cmp, starred, value) in enumerate(args):
            if cmp:
                compared[f"p{i}"] = _safe_encode(value)
            if starred:
                pos.extend(value)
            else:
                pos.append(value)
        for cmp, name, value in kwargs:
            if cmp:
                compared[f"k{name}" if name else f"kw{len(compared)}"] = _safe_encode(value)
            if name is None:
                kw.update(value)
            else:
                kw[name] = value
        fn = thunk()
        _state["depth"] += 1
        try:
            result = fn(*pos, **kw)
        finally:
            _state["depth"] -= 1
    except BaseException as exc:
        _write({"site": site, "nested": nested, "args": compared, "error": _error(exc)})
        raise
    _write({"site": site, "nested": nested, "args": compared, "value": _safe_encode(result)})
    return result


def _check(site: int, thunk: Any) -> Any:
    previous = _state["site"]
    _state["site"] = site
    try:
        return thunk()
    finally:
        _state["site"] = previous


def _emit(kind: str, plan: Any, record: Any) -> None:
    from grader import checks

    site = _state["site"]
    if site is None:
        return
    try:
        entry = {"site": site, "nested": _state["depth"] > 0, "check": kind,
                 "plan": json.loads(checks.to_json(plan)), "record": json.loads(checks.to_json(record))}
    except Exception as exc:
        entry = {"site": site, "nested": _state["depth"] > 0, "check": kind, "broken": type(exc).__name__}
    _write(entry)


def install(namespace: dict, path: str) -> None:
    """Open the records file and put the three recording functions into the notebook's namespace."""
    from grader import checks

    _state["fh"] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the kernel
    namespace["__dlc_val__"] = _val
    namespace["__dlc_call__"] = _call
    namespace["__dlc_check__"] = _check
    checks._EMITTER = _emit
