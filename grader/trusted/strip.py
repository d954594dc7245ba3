"""The kernel's copy of dlcore without the references of the exercises being graded.

For every reference a chapter's test cells name, the class or function is rewritten in the COPIED
source (a library directory the sandboxed kernel imports) so that using it raises::

    RuntimeError: dlcore's Affine is not available while grading: implement it yourself

Delegating to dlcore is then impossible inside the kernel rather than detected. A class keeps its
name and bases (other dlcore code may still import or subclass it); a function keeps its name.
"""

from __future__ import annotations

import ast
import inspect
from collections import defaultdict
from pathlib import Path

MESSAGE = "dlcore's {name} is not available while grading: implement it yourself"


def _stub(node: ast.stmt, source_lines: list[str]) -> list[str]:
    indent = " " * node.col_offset
    msg = MESSAGE.format(name=node.name)
    if isinstance(node, ast.ClassDef):
        bases = ", ".join(ast.unparse(b) for b in node.bases)
        return [f"{indent}class {node.name}({bases}):\n",
                f"{indent}    \"\"\"{msg}.\"\"\"\n\n",
                f"{indent}    def __init__(self, *args, **kwargs):\n",
                f"{indent}        raise RuntimeError({msg!r})\n"]
    return [f"{indent}def {node.name}(*args, **kwargs):\n",
            f"{indent}    \"\"\"{msg}.\"\"\"\n",
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


def strip_references(library: Path, references: set[str] | frozenset[str]) -> list[str]:
    """Rewrite the references in the copy under ``library``; returns "module.name" of what was stripped."""
    done = []
    for rel, names in targets(references).items():
        path = Path(library) / rel
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        nodes = [n for n in ast.parse(text).body
                 if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names]
        for node in sorted(nodes, key=lambda n: n.lineno, reverse=True):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            lines[start:node.end_lineno] = _stub(node, lines)
            done.append(f"{rel}:{node.name}")
        path.write_text("".join(lines), encoding="utf-8")
    return sorted(done)
