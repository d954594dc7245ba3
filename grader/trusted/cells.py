"""Declarative test cells: read the check calls from a SOURCE notebook's test cell (trusted side).

A test cell holds only comments, blank lines, the hidden-test markers and expression statements
``checks.check_<kind>(Name, "Reference", option=literal | Name, ...)`` where each argument is a bare
Name that the notebook's answer cells define, or a literal (numbers, strings, bools, None, tuples,
lists and dicts of literals, unary minus). Anything else is an authoring error (:class:`NotDeclarative`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Call", "NotDeclarative", "nbgrader_meta", "parse_cell", "test_calls", "defined_names", "exercise_of",
           "references"]


class NotDeclarative(ValueError):
    """A test cell that is not a list of declarative check calls."""


@dataclass
class Call:
    """One check call: ``checks.check_<kind>(student, reference, **options)``; ``names``: options given by name."""

    kind: str
    student: str
    reference: str = ""
    options: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)


def _literal(node: ast.expr, where: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise NotDeclarative(f"{where}: only a bare name or a literal is allowed here, got `{ast.unparse(node)}`") \
            from None


def parse_cell(source: str) -> list[Call]:
    """The check calls of one test cell, in order; raises NotDeclarative for anything else."""
    from grader import kinds

    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise NotDeclarative(f"the test cell is not valid Python ({exc.msg}, line {exc.lineno})") from None
    calls = []
    for stmt in tree.body:
        where, call = f"line {stmt.lineno}", getattr(stmt, "value", None)
        if not (isinstance(stmt, ast.Expr) and isinstance(call, ast.Call)):
            raise NotDeclarative(f"{where}: a test cell holds only calls `checks.check_<kind>(...)`, got "
                                 f"`{ast.unparse(stmt)[:80]}`")
        f = call.func
        if not (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "checks"
                and f.attr.startswith("check_")):
            raise NotDeclarative(f"{where}: only `checks.check_<kind>(...)` may be called, got `{ast.unparse(f)}`")
        kind = f.attr[len("check_"):]
        if kinds.find(kind) is None:
            raise NotDeclarative(f"{where}: there is no check kind {kind!r} (grader/trusted/plans){kinds.broken(kind)}")
        if not call.args or not isinstance(call.args[0], ast.Name) or len(call.args) > 2:
            raise NotDeclarative(f"{where}: checks.check_{kind} takes the student's object as a bare name, then "
                                 "optionally the reference's name as a string")
        reference = _literal(call.args[1], where) if len(call.args) == 2 else ""
        if not isinstance(reference, str):
            raise NotDeclarative(f"{where}: the reference is named by a string, e.g. \"Affine\"")
        if any(kw.arg is None for kw in call.keywords):
            raise NotDeclarative(f"{where}: `**` is not allowed in a test cell")
        names = {kw.arg: kw.value.id for kw in call.keywords if isinstance(kw.value, ast.Name)}
        options = {kw.arg: names[kw.arg] if kw.arg in names else _literal(kw.value, f"{where}, {kw.arg}=")
                   for kw in call.keywords}
        calls.append(Call(kind, call.args[0].id, reference, options, names))
    return calls


def nbgrader_meta(cell: Any) -> dict:
    """The cell's nbgrader metadata ({} when it has none)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_test(cell: Any) -> bool:
    m = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(m.get("grade")) and not m.get("solution")


def test_calls(nb: Any) -> dict[str, list[Call] | NotDeclarative]:
    """grade_id -> the calls of each test cell of a notebook (or the reason it is not declarative)."""
    found: dict[str, list[Call] | NotDeclarative] = {}
    for cell in nb.cells:
        if is_test(cell):
            try:
                found[nbgrader_meta(cell)["grade_id"]] = parse_cell(cell.source)
            except NotDeclarative as exc:
                found[nbgrader_meta(cell)["grade_id"]] = exc
    return found


def defined_names(source: str) -> set[str]:
    """Top-level names a cell defines (functions, classes, assignments, imports); IPython syntax allowed."""
    from grader.trusted.source import parse_cell as parse_code

    tree = parse_code(source)
    names: set[str] = set()
    for stmt in tree.body if tree is not None else ():
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            for t in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in stmt.names}
    return names


_EXERCISE = re.compile(r"Exercise\s+(\d+(?:\.\d+)*)")


def exercise_of(nb: Any, name: str) -> str:
    """"Exercise N.M" (or "its exercise cell") for the answer cell of the source notebook that defines ``name``."""
    heading = None
    for cell in nb.cells:
        if cell.get("cell_type") == "markdown":
            m = _EXERCISE.search(cell.source)
            if m:
                heading = f"Exercise {m.group(1)}"
        elif nbgrader_meta(cell).get("solution") and name in defined_names(cell.source):
            return heading or f"the answer cell '{nbgrader_meta(cell).get('grade_id')}'"
    return "the cell that defines it"


def references(nb: Any) -> set[str]:
    """The reference names of every check call in a notebook (what the kernel's dlcore must not have)."""
    refs: set[str] = set()
    for calls in test_calls(nb).values():
        if isinstance(calls, list):
            refs |= {c.reference for c in calls if c.reference}
    return refs
