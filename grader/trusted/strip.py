"""The kernel's copy of dlcore without the references of the exercises being graded.

For every reference a chapter's test cells name, the COPIED source (a library directory the sandboxed
kernel imports) is changed so that using it from outside dlcore raises::

    RuntimeError: dlcore's Affine is not available while grading: implement it yourself

- a reference that no other part of dlcore uses is replaced by a stub: its code is not in the kernel at
  all (a class keeps its name and bases, a function its name);
- a reference that dlcore itself uses (``he_normal`` inside ``Affine``, ``Affine`` inside the composite
  networks) keeps its code for those callers, behind a guard: calling the function or constructing the
  class from anywhere but dlcore's own files raises the same error.

Delegating to dlcore is then impossible (stubs) or refused at the call (guards) inside the kernel,
rather than detected; the source scan (grader.trusted.source) stays as a second line.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections import defaultdict
from pathlib import Path

MESSAGE = "dlcore's {name} is not available while grading: implement it yourself"

GUARD = '''

def _dlc_guard(obj, name):
    """The graded reference ``name``: usable by dlcore's own code only (see grader/trusted/strip.py)."""
    import os as _os
    import sys as _sys

    home = _os.path.abspath(__file__)
    while _os.path.basename(home) != "dlcore":
        home = _os.path.dirname(home)
    message = "dlcore's " + name + " is not available while grading: implement it yourself"

    def refuse():
        if not _sys._getframe(2).f_code.co_filename.startswith(home + _os.sep):
            raise RuntimeError(message)

    if isinstance(obj, type):
        init = obj.__init__

        def __init__(self, *args, **kwargs):
            refuse()
            init(self, *args, **kwargs)

        obj.__init__ = __init__
        return obj

    def guarded(*args, **kwargs):
        refuse()
        return obj(*args, **kwargs)

    guarded.__name__, guarded.__qualname__, guarded.__doc__ = obj.__name__, obj.__qualname__, obj.__doc__
    return guarded
'''


def _stub(node: ast.stmt) -> list[str]:
    indent = " " * node.col_offset
    msg = MESSAGE.format(name=node.name)
    if isinstance(node, ast.ClassDef):
        bases = ", ".join(ast.unparse(b) for b in node.bases)
        return [f"{indent}class {node.name}({bases}):\n", f"{indent}    \"\"\"{msg}.\"\"\"\n\n",
                f"{indent}    def __init__(self, *args, **kwargs):\n", f"{indent}        raise RuntimeError({msg!r})\n"]
    return [f"{indent}def {node.name}(*args, **kwargs):\n", f"{indent}    \"\"\"{msg}.\"\"\"\n",
            f"{indent}    raise RuntimeError({msg!r})\n"]


def targets(references: set[str] | frozenset[str]) -> dict[str, set[str]]:
    """dlcore source file (relative to the package's parent) -> names to strip, for the given references."""
    import dlcore
    from grader.trusted.messages import resolve_reference

    root = Path(next(iter(dlcore.__path__))).resolve().parent
    found: dict[str, set[str]] = defaultdict(set)
    for ref in references:
        try:
            obj = resolve_reference(ref)
            path = Path(inspect.getsourcefile(obj) or "").resolve()
        except (ValueError, ImportError, AttributeError, TypeError):
            continue  # not a dlcore object (e.g. an examples label): nothing to strip
        name = getattr(obj, "__qualname__", "")
        if "." not in name and path.is_relative_to(root / "dlcore"):
            found[str(path.relative_to(root))].add(name)
    return found


def _used_elsewhere(library: Path, rel: str, name: str) -> bool:
    """Does any other dlcore module (or another definition in the same one) name ``name``?"""
    word = re.compile(rf"\b{re.escape(name)}\b")
    for path in (Path(library) / "dlcore").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if str(path.relative_to(library)) == rel:
            tree = ast.parse(text)
            text = "\n".join(ast.get_source_segment(text, n) or "" for n in tree.body
                             if not (isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name)
                             and not isinstance(n, (ast.Import, ast.ImportFrom)))
        elif path.name == "__init__.py":
            text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("from ", "import ")))
        if word.search(re.sub(r"__all__\s*=\s*\[[^\]]*\]", "", text)):  # a module's export list is no use
            return True
    return False


def strip_references(library: Path, references: set[str] | frozenset[str]) -> list[str]:
    """Change the references in the copy under ``library``; returns "file:name (stub|guard)" for each."""
    done = []
    for rel, names in targets(references).items():
        path = Path(library) / rel
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        nodes = [n for n in ast.parse(text).body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names]
        guarded = sorted(n.name for n in nodes if _used_elsewhere(library, rel, n.name))
        for node in sorted(nodes, key=lambda n: n.lineno, reverse=True):
            if node.name in guarded:
                continue
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            lines[start:node.end_lineno] = _stub(node)
            done.append(f"{rel}:{node.name} (stub)")
        if guarded:
            lines.append(GUARD + "".join(f"\n{n} = _dlc_guard({n}, {n!r})" for n in guarded) + "\n")
            done += [f"{rel}:{n} (guard)" for n in guarded]
        path.write_text("".join(lines), encoding="utf-8")
    return sorted(done)
