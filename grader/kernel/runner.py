"""The kernel side of batch grading: run the requested records of a test cell, write them as data.

Requests (per test cell, ``{"kind", "student", "names", "inputs"}`` planned from the SOURCE notebook) come
from a file the kernel cannot write; the executed test cell is only ``__dlc_tests__("<grade_id>")``; each
record is appended as ``{"cell", "call", "record"}``. Nothing here decides anything: see grader/README.md,
"Threat model and design", 2.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable
from types import ModuleType
from typing import Any

from grader.kernel import wire

RECORDS = "grader.kernel.records"
_state: dict[str, Any] = {"ns": None, "requests": None, "out": None, "modules": None}


def import_modules(package: str) -> tuple[list[ModuleType], dict[str, str]]:
    """The modules of ``package`` in name order, imported, and those that failed to import (name -> error):
    a broken module costs only its own kinds, never the others'."""
    modules, broken = [], {}
    for info in sorted(pkgutil.iter_modules(importlib.import_module(package).__path__), key=lambda m: m.name):
        try:
            modules.append(importlib.import_module(f"{package}.{info.name}"))
        except Exception as exc:  # e.g. a syntax error in one chapter's module
            broken[f"{package}.{info.name}"] = f"{type(exc).__name__}: {exc}"
    return modules, broken


def find_function(modules: list[ModuleType], name: str) -> Callable | None:
    """The function ``name`` of the first of ``modules`` that defines it, or None."""
    return next((getattr(m, name) for m in modules if callable(getattr(m, name, None))), None)


def _record_function(kind: str) -> Any:
    modules, broken = _state["modules"] or import_modules(RECORDS)
    fn = find_function(modules, f"record_{kind}")
    if fn is None:
        raise LookupError(f"the kernel has no record_{kind}" + "".join(f"; {m} failed to import ({e})"
                                                                       for m, e in broken.items()))
    return fn


def run(cell: str) -> None:
    """Record every check of the test cell ``cell`` (its grade_id)."""
    ns, out = _state["ns"], _state["out"]
    for i, req in enumerate(_state["requests"].get(cell, [])):
        missing = [n for n in [req["student"], *req["names"].values()] if n not in ns]
        if missing:
            record = {"__missing__": missing[0]}
        else:
            inputs = {**wire.decode(req["inputs"]), **{k: ns[n] for k, n in req["names"].items()}}
            try:
                record = _record_function(req["kind"])(ns[req["student"]], inputs)
            except Exception as exc:  # a record function must not break; if it does, the check fails with this
                record = {"__error__": f"{type(exc).__name__}: {str(exc)[:300]}"}
        out.write(json.dumps({"cell": cell, "call": i, "record": wire.encode(record)}, allow_nan=False) + "\n")
        out.flush()


def install(namespace: dict, requests_path: str, records_path: str) -> None:
    """Read the requests, open the records file and bind ``__dlc_tests__`` in the notebook's namespace."""
    with open(requests_path, encoding="utf-8") as fh:
        _state["requests"] = json.load(fh)
    _state["ns"] = namespace
    # every record module now, while the library copy is certainly there: a grader that starts while this
    # kernel runs may clean up the copy of an earlier, killed batch (this kernel's, if its worker outlived it)
    _state["modules"] = import_modules(RECORDS)
    _state["out"] = open(records_path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the kernel
    namespace["__dlc_tests__"] = run
