"""Checks on the student's source (trusted side), decided from the AST of the answer cells.

*Delegation* (an exercise uses its dlcore reference: that exercise is 0) and *tampering* (a way to reach
the grader or the interpreter: the notebook is not executed, every exercise is 0); what each covers is in
grader/README.md, "Threat model and design", 3.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import pkgutil
import re
import sys
from collections import defaultdict, deque
from typing import Any

from grader.kernel.student import PROTOCOL_BASES
from grader.trusted.cells import defined_names

__all__ = ["parse_cell", "imports_of", "SourceIndex", "delegation", "tampering", "PUBLIC_CHECKS"]

#: Where a student's exercise code may not look: the grader cannot follow these, so they count as delegation.
_DYNAMIC = {"__import__", "eval", "exec", "compile", "globals", "importlib", "gc", "ctypes", "__builtins__",
            "__subclasses__", "__globals__", "__code__", "builtins", "inspect", "sys.modules", "get_ipython",
            "__dlc_tests__"}


def parse_cell(source: str) -> ast.Module | None:
    """The AST of a cell, IPython syntax (magics, ``!cmd``) turned into plain Python; None when it does not parse."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


# --------------------------------------------------------------------------- imports and aliases


def imports_of(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted path for every import in ``tree`` (anywhere, also inside functions)."""
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    found[a.asname] = a.name
                else:
                    found[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name != "*":
                    found[a.asname or a.name] = f"{node.module}.{a.name}"
    return found


def _text(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:
        text = "<expression>"
    return text if len(text) <= 120 else text[:117] + "…"


class SourceIndex:
    """What the student's cells define and import, for deciding delegation from the source."""

    def __init__(self, student_cells: list[str], all_cells: list[str]) -> None:
        self.aliases: dict[str, set[str]] = defaultdict(set)
        for tree in filter(None, map(parse_cell, all_cells)):
            for name, path in imports_of(tree).items():
                self.aliases[name].add(path)
        #: top-level names defined by any cell (the instructor's too)
        self.anywhere: set[str] = set().union(*map(defined_names, all_cells))
        self.defs: dict[str, list[ast.AST]] = defaultdict(list)
        for tree in filter(None, map(parse_cell, student_cells)):
            for stmt in tree.body:
                self._collect(stmt)
        for _ in range(3):  # module-level aliases of aliases:  A = dlcore.nn.Affine
            for name, nodes in self.defs.items():
                for node in nodes:
                    if isinstance(node, ast.expr):
                        self.aliases[name] |= self.dotted(node)

    def _collect(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.defs[stmt.name].append(stmt)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and stmt.value is not None:
            for t in getattr(stmt, "targets", None) or [stmt.target]:
                for name in _target_names(t):
                    self.defs[name].append(stmt.value)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for name in imports_of(stmt):
                self.defs[name].append(stmt)
        elif isinstance(stmt, (ast.If, ast.Try, ast.With, ast.For, ast.While)):  # their bodies, else and finally
            for child in ast.iter_child_nodes(stmt):
                for s in child.body if isinstance(child, ast.ExceptHandler) else [child]:
                    if isinstance(s, ast.stmt):
                        self._collect(s)

    def dotted(self, node: ast.AST) -> set[str]:
        """Dotted paths an expression like ``F.sigmoid`` or ``dlcore.nn.Affine`` may stand for."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return set()
        suffix = ".".join(reversed(parts))
        return {f"{b}.{suffix}" if suffix else b for b in self.aliases.get(node.id, set())}


def _target_names(t: ast.AST) -> list[str]:
    if isinstance(t, ast.Name):
        return [t.id]
    if isinstance(t, (ast.Tuple, ast.List)):
        return [n for e in t.elts for n in _target_names(e)]
    if isinstance(t, ast.Starred):
        return _target_names(t.value)
    return []


def instructor_uses(cells: list[str]) -> list[Any]:
    """The dlcore objects that the given (instructor's) code cells import or reach by attribute."""
    index = SourceIndex([], cells)
    found = []
    for src in cells:
        tree = parse_cell(src)
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, (ast.Name, ast.Attribute)):
                for path in index.dotted(node):
                    obj = resolve_dotted(path)
                    if obj is not None and not any(obj is o for o in found):
                        found.append(obj)
    return found


def resolve_dotted(path: str) -> Any:
    """The dlcore object a dotted path names (only dlcore.* is ever imported), or None."""
    if not (path == "dlcore" or path.startswith("dlcore.")):
        return None
    try:
        return pkgutil.resolve_name(path)
    except (ImportError, ValueError, AttributeError):
        return None




def delegation(index: SourceIndex, student: ast.expr | None, reference: Any) -> str | None:
    """Why the exercise checked with ``student`` uses dlcore's ``reference`` (None when it does not).

    Follows the student's definitions (and the definitions they use) through the solution cells' AST:
    any reference to the reference object itself, a dlcore base class other than Layer/Loss, code the
    grader cannot follow (``eval``, ``__import__``, ``sys.modules``, ...) or the grader's own module.
    """
    if student is None:
        return None
    ref_name = getattr(reference, "__name__", str(reference))
    label = _text(student)

    def verdict(why: str) -> str:
        return (f"{label} uses dlcore's reference implementation: {why}. This exercise asks you to write "
                f"{ref_name} yourself, so it scores zero while it delegates to dlcore (decided from your "
                "notebook's source). You may use NumPy, and dlcore for other things.")

    def is_reference(path: str) -> bool:
        obj = resolve_dotted(path)
        return obj is not None and obj is reference

    def check_path(path: str, how: str) -> str | None:
        if path.startswith("grader"):
            return f"{how} the grader's own module ({path})"
        return f"{how} dlcore's {ref_name} ({path})" if is_reference(path) else None

    seen: set[str] = set()
    roots = [n.id for n in ast.walk(student) if isinstance(n, ast.Name)]
    for name in roots:
        for path in sorted(index.aliases.get(name, set())):
            if path.startswith("grader"):
                return verdict(f"{name} comes from the grader's own module ({path})")
            if is_reference(path):
                return verdict(f"{name} is dlcore's own {ref_name} (imported from {path}), not code written in "
                               "your notebook")
    if roots and not any(index.defs.get(n) or index.aliases.get(n) or n in index.anywhere for n in roots):
        return verdict(f"the grader finds no definition of {', '.join(roots)} in your solution cells (it must be "
                       "written there, not created dynamically)")
    queue = deque(roots)
    while queue:
        name = queue.popleft()
        if name in seen:
            continue
        seen.add(name)
        for node in index.defs.get(name, []):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for path in (p for local, p in imports_of(node).items() if local == name):
                    why = check_path(path, f"{name} is imported from")
                    if why is None and name in roots and path.startswith("dlcore"):
                        why = f"{name} is imported from dlcore ({path}), not written in your notebook"
                    if why:
                        return verdict(why)
                continue
            for base in node.bases if isinstance(node, ast.ClassDef) else ():
                for path in index.dotted(base):
                    obj = resolve_dotted(path)
                    if obj is not None and obj is reference:
                        return verdict(f"{node.name} subclasses dlcore's {ref_name}")
                    if inspect.isclass(obj) and f"{obj.__module__}.{obj.__qualname__}" not in PROTOCOL_BASES:
                        return verdict(f"{node.name} inherits from dlcore's {obj.__module__}.{obj.__qualname__}")
            for sub in ast.walk(node):
                dynamic = sub.id if isinstance(sub, ast.Name) and sub.id in _DYNAMIC else None
                if isinstance(sub, ast.Attribute) and (sub.attr in _DYNAMIC or _text(sub) in _DYNAMIC):
                    dynamic = _text(sub)
                if dynamic:
                    return verdict(f"its code uses `{dynamic}`, which the grader cannot follow; write the "
                                   "computation directly")
                if isinstance(sub, ast.Name) and sub.id in index.defs and sub.id not in seen:
                    queue.append(sub.id)
                paths = index.dotted(sub) if isinstance(sub, (ast.Name, ast.Attribute)) else \
                    imports_of(sub).values() if isinstance(sub, (ast.Import, ast.ImportFrom)) else ()
                for path in paths:
                    if why := check_path(path, "it imports" if isinstance(sub, (ast.Import, ast.ImportFrom))
                                         else "it uses"):
                        return verdict(why)
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and "dlcore" in sub.value:
                    return verdict("its code names dlcore in a string (a dynamic import?)")
    return None


# --------------------------------------------------------------------------- tampering, from the source

#: Line and cell magics a submission may use (anything else that reaches IPython's machinery is flagged).
SAFE_MAGICS = {"matplotlib", "time", "timeit", "prun", "precision", "pprint", "who", "whos", "who_ls", "xmode",
               "pinfo", "pinfo2", "pdef", "pdoc", "psource", "psearch", "config", "autoreload", "html", "latex",
               "markdown", "svg", "capture", "reset", "pwd", "cd", "ls", "javascript", "js",
               "debug", "history", "page", "tb", "lsmagic", "magic", "quickref", "doctest_mode"}
#: Attributes of grader.checks a student may use (the check helpers; their kinds are found by name).
PUBLIC_CHECKS = re.compile(r"^check_[a-z0-9_]+$")
_FORBIDDEN_NAMES = {"exec", "eval", "compile", "__import__", "globals", "__builtins__", "breakpoint"}
_FORBIDDEN_MODULES = {"importlib", "gc", "ctypes", "inspect", "builtins", "imp", "runpy", "code", "codeop",
                      "pickle", "marshal", "dill", "cloudpickle", "grader",
                      # other processes could compute results outside the notebook and write records
                      "subprocess", "multiprocessing", "concurrent", "pty"}
#: os functions that start processes (``os.system``, ``os.popen``, ``os.exec*``, ``os.spawn*``, ``os.fork``).
_PROCESS_FUNCTIONS = re.compile(r"^(system|popen|exec[lv]p?e?|spawn[lv]p?e?|posix_spawnp?|fork|forkpty)$")
_FORBIDDEN_ATTRS = {"f_globals", "f_locals", "f_back", "f_builtins", "f_code", "tb_frame", "gi_frame", "cr_frame",
                    "__globals__", "__code__", "__closure__", "__subclasses__", "__builtins__", "_getframe",
                    "__loader__", "__spec__", "meta_path", "path_hooks", "settrace", "setprofile", "_current_frames",
                    "user_ns", "user_global_ns", "input_transformers_post", "input_transformers_cleanup", "events",
                    "ast_transformers", "set_custom_exc"}


def _module_available(name: str) -> bool:
    top = name.split(".")[0]
    if top in sys.builtin_module_names or top in getattr(sys, "stdlib_module_names", ()):
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _is_get_ipython_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "get_ipython"


def tampering(cells: list[tuple[str, str]], instructor_imports: dict[str, str]) -> list[str]:
    """What in the student's cells could tamper with the grader (``[]`` when nothing).

    ``cells``: (label, source) of the student's code cells; ``instructor_imports``: the locked cells'
    imports (local name -> module). The verdicts do not depend on the kernel, but a kernel can always
    report values of its choosing; these are the ways to do that from a notebook, and none of them is
    needed to solve an exercise: the grader's own modules, IPython's machinery, interpreter frames and
    code objects, dynamic code (exec, eval, __import__), changes to imported modules, rebinding the
    instructor's imports, and modules that are not part of the course environment (code the grader
    cannot see).
    """
    found: list[str] = []
    grader_names = {n for n, p in instructor_imports.items() if p == "grader" or p.startswith("grader.")}
    for label, tree in ((label, parse_cell(source)) for label, source in cells):
        if tree is None:
            continue
        aliases = {**instructor_imports, **imports_of(tree)}
        problems: list[str] = []
        for stmt in tree.body:  # rebinding the instructor's `checks` (or another grader import) at top level
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)] \
                if isinstance(stmt, (ast.AnnAssign, ast.AugAssign, ast.For, ast.With)) else []
            names = {n for t in targets if t is not None for n in _target_names(t)}
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(stmt.name)
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                names |= {n for n, p in imports_of(stmt).items() if not p.startswith("grader")}
            problems += [f"rebinds `{n}`, the grader's module the tests use" for n in sorted(names & grader_names)]
        get_ipython_uses = 0  # beyond get_ipython().<method>(...) calls, checked below
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                get_ipython_uses += node.id == "get_ipython"
                if node.id.startswith("__dlc") or node.id in _FORBIDDEN_NAMES:
                    problems.append(f"`{node.id}`")
            elif isinstance(node, ast.Attribute):
                if node.attr in _FORBIDDEN_ATTRS or node.attr.startswith("__dlc"):
                    problems.append(f"`.{node.attr}`")
                base = node.value
                if isinstance(base, ast.Name) and base.id in aliases:
                    path = aliases[base.id]
                    if isinstance(node.ctx, (ast.Store, ast.Del)):
                        problems.append(f"changes `{_text(node)}` (an attribute of the module {path})")
                    elif path == "sys" and node.attr == "modules":
                        problems.append("`sys.modules`")
                    elif path in ("os", "posix") and _PROCESS_FUNCTIONS.match(node.attr):
                        problems.append(f"`{_text(node)}` (starts another process)")
                    elif (path == "grader.checks" and not PUBLIC_CHECKS.match(node.attr)) or \
                            (path == "grader" and node.attr != "checks"):
                        problems.append(f"`{_text(node)}` (the grader's internals)")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for path in imports_of(node).values():
                    top = path.split(".")[0]
                    if path == "grader.checks" or (path.startswith("grader.checks.") and
                                                   PUBLIC_CHECKS.match(path.rsplit(".", 1)[1])):
                        continue
                    if top in _FORBIDDEN_MODULES or path == "sys.modules":
                        problems.append(f"imports {path}")
                    elif not _module_available(top):
                        problems.append(f"imports {top}, which is not part of the course environment")
                if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                    problems.append(f"`from {node.module} import *`")
            elif isinstance(node, ast.Call):
                f, first = node.func, node.args[0] if node.args else None
                if isinstance(f, ast.Name) and f.id in ("setattr", "delattr", "vars") and \
                        isinstance(first, ast.Name) and first.id in aliases:
                    problems.append(f"`vars({first.id})`" if f.id == "vars" else
                                    f"`{f.id}({first.id}, ...)` on a module")
                if isinstance(f, ast.Attribute) and _is_get_ipython_call(f.value):
                    get_ipython_uses -= 1
                    if f.attr in ("run_line_magic", "run_cell_magic"):
                        name = first.value if isinstance(first, ast.Constant) else None
                        if name not in SAFE_MAGICS:
                            problems.append(f"the magic %{name}" if name else "a computed magic")
                    elif f.attr in ("system", "getoutput"):
                        problems.append("a shell command (`!...`): it starts another process")
                    else:
                        problems.append(f"`get_ipython().{f.attr}`")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    ("__dlc" in node.value or "grader.recorder" in node.value):
                problems.append("a string naming the grader's internals")
        if get_ipython_uses > 0:
            problems.append("`get_ipython`")
        found += [f"{label}: {p}" for p in dict.fromkeys(problems)]
    return found
