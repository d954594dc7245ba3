"""Trusted verdicts: test cells are re-run outside the student's kernel on the student's recorded values.

How a test cell is graded (see grader/README.md, "Threat model and design"):

1. ``rewrite_cell`` parses the test cell from the SOURCE notebook (hidden tests included) and finds, by a
   small taint analysis, every expression that needs the student's code: a name the test cell does not
   define itself (``step``, ``net``, ``test_acc``), and whatever is derived from it (``net.params``,
   ``grads[name]``, ``train_perceptron(X, y)``). Each such expression is wrapped:
   ``__dlc_val__(site, lambda: expr)``, ``__dlc_call__(site, lambda: f, args, kwargs)``, and calls of the
   checks that run student code (``checks.check_layer(...)`` etc.) ``__dlc_check__(site, lambda: call)``.
2. The kernel runs the rewritten cell; grader.recorder writes each wrapped value, the arguments the test
   code passed to each student call, and each check's plan and record, as plain data.
3. The trusted process runs the same rewritten cell with its own, pristine modules (``replay_cell``): the
   test code itself (random inputs, references, comparisons, the checks) runs here, and the wrapped
   expressions return the recorded values instead. Arguments the test code computed are compared with
   the ones the kernel recorded, and a check's inputs with the grader's own plan, so student code cannot
   feed its functions other inputs than the test's. A missing record means the test did not run that
   far in the notebook.
4. ``delegation`` decides from the student's SOURCE (AST of the solution cells) whether an exercise uses
   dlcore's reference implementation of the same thing.

Everything read from the kernel is decoded by :func:`decode`, which builds only numbers, strings,
numeric arrays, lists, tuples and dicts (no pickle, no object arrays).
"""

from __future__ import annotations

import ast
import base64
import builtins
import contextlib
import importlib
import importlib.util
import io
import json
import re
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["rewrite_cell", "RewrittenCell", "Records", "ReplayResult", "replay_cell", "decode", "Opaque",
           "python_source", "imports_of", "SourceIndex", "CHECKS_WITH_RECORDS"]

#: grader.checks helpers that run student code: their records come from the kernel.
CHECKS_WITH_RECORDS = {"check_layer": "layer", "check_function": "function", "check_gate": "gate",
                       "check_numerical_gradient": "numerical_gradient"}


def _check_kind(helper: str) -> str | None:
    """The record kind of a ``checks.check_*`` helper: the four above, or a kind of grader/kinds.py."""
    if helper in CHECKS_WITH_RECORDS:
        return CHECKS_WITH_RECORDS[helper]
    from grader import kinds
    if helper.startswith("check_") and kinds.find(helper[len("check_"):]) is not None:
        return helper[len("check_"):]
    return None
_BUILTINS = set(dir(builtins))
_RUNTIME = ("__dlc_val__", "__dlc_call__", "__dlc_check__")
#: Where a student's exercise code may not look: the grader cannot follow these, so they count as delegation.
_DYNAMIC = {"__import__", "eval", "exec", "compile", "globals", "importlib", "gc", "ctypes", "__builtins__",
            "__subclasses__", "__globals__", "__code__", "builtins", "inspect", "sys.modules", "get_ipython",
            "__dlc_val__", "__dlc_call__", "__dlc_check__"}


def python_source(source: str) -> str:
    """Cell source with IPython syntax (magics, ``!cmd``) turned into plain Python."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(source)


def parse_cell(source: str) -> ast.Module | None:
    try:
        return ast.parse(python_source(source))
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


# --------------------------------------------------------------------------- taint analysis


@dataclass
class _Scope:
    kind: str                       # "module", "function", "lambda", "comprehension", "class"
    parent: _Scope | None
    bound: set[str] = field(default_factory=set)
    tainted: set[str] = field(default_factory=set)
    globals_: set[str] = field(default_factory=set)
    params: list[str] = field(default_factory=list)


class _Analysis(ast.NodeVisitor):
    """Flow-insensitive taint analysis of one test cell (iterated to a fixed point by the caller)."""

    def __init__(self, trusted_globals: set[str], prev: dict[int, _Scope] | None) -> None:
        self.trusted_globals = trusted_globals
        self.scopes: dict[int, _Scope] = prev or {}
        self.changed = False
        self.stack: list[_Scope] = []
        self.defs: dict[str, ast.FunctionDef] = {}

    # -- scopes --------------------------------------------------------------------------
    def scope_for(self, node: ast.AST, kind: str) -> _Scope:
        sc = self.scopes.get(id(node))
        if sc is None:
            sc = _Scope(kind, self.stack[-1] if self.stack else None)
            self.scopes[id(node)] = sc
        return sc

    def bind(self, name: str, tainted: bool) -> None:
        sc = self.stack[-1]
        if name in sc.globals_:
            while sc.parent is not None:
                sc = sc.parent
        sc.bound.add(name)
        if tainted and name not in sc.tainted:
            sc.tainted.add(name)
            self.changed = True

    def name_tainted(self, name: str, scope: _Scope | None = None) -> bool:
        sc = scope or self.stack[-1]
        while sc is not None:
            if sc.kind == "class" and sc is not self.stack[-1]:
                sc = sc.parent
                continue
            if name in sc.bound:
                return name in sc.tainted
            sc = sc.parent
        if name in _RUNTIME:
            return False
        return name not in self.trusted_globals and name not in _BUILTINS

    def tainted(self, node: ast.AST | None) -> bool:
        """Does evaluating ``node`` involve a student value?"""
        if node is None:
            return False
        if isinstance(node, ast.Name):
            return self.name_tainted(node.id)
        if isinstance(node, ast.Lambda):
            return False  # a function of the test code; its body is rewritten where it touches student values
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            gens = node.generators
            if self.tainted(gens[0].iter):
                return True
            sc = self.scopes.get(id(node))
            if sc is None:
                return True
            self.stack.append(sc)
            try:
                parts = [g.iter for g in gens[1:]] + [c for g in gens for c in g.ifs] + \
                        [getattr(node, p) for p in ("elt", "key", "value") if hasattr(node, p)]
                return any(self.tainted(p) for p in parts)
            finally:
                self.stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.keyword):
                child = child.value
            if isinstance(child, ast.expr) and self.tainted(child):
                return True
        return False

    # -- bindings ------------------------------------------------------------------------
    def bind_target(self, target: ast.AST, tainted: bool) -> None:
        if isinstance(target, ast.Name):
            self.bind(target.id, tainted)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.bind_target(elt, tainted)
        elif isinstance(target, ast.Starred):
            self.bind_target(target.value, tainted)
        # attributes and subscripts bind nothing

    def visit_Module(self, node: ast.Module) -> None:
        self.stack.append(self.scope_for(node, "module"))
        for stmt in node.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self.defs[stmt.name] = stmt
        self.generic_visit(node)
        self.stack.pop()

    def visit_Global(self, node: ast.Global) -> None:
        self.stack[-1].globals_.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        pass

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, kind: str) -> None:
        for d in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(d)
        if not isinstance(node, ast.Lambda):
            for d in node.decorator_list:
                self.visit(d)
            self.bind(node.name, False)
        sc = self.scope_for(node, kind)
        args = node.args
        names = [a.arg for a in args.posonlyargs + args.args]
        sc.params = names
        self.stack.append(sc)
        for a in args.posonlyargs + args.args + args.kwonlyargs:
            sc.bound.add(a.arg)
        for a in (args.vararg, args.kwarg):
            if a is not None:
                sc.bound.add(a.arg)
        body = node.body if isinstance(node.body, list) else [node.body]
        for stmt in body:
            self.visit(stmt)
        self.stack.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node, "function")

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node, "lambda")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for b in node.bases + [k.value for k in node.keywords] + node.decorator_list:
            self.visit(b)
        self.bind(node.name, False)
        sc = self.scope_for(node, "class")
        self.stack.append(sc)
        for stmt in node.body:
            self.visit(stmt)
        self.stack.pop()

    def _comprehension(self, node: Any) -> None:
        gens = node.generators
        self.visit(gens[0].iter)
        sc = self.scope_for(node, "comprehension")
        self.stack.append(sc)
        for i, gen in enumerate(gens):
            if i:
                self.visit(gen.iter)
            self.bind_target(gen.target, self.tainted(gen.iter))
            for cond in gen.ifs:
                self.visit(cond)
        for part in ("elt", "key", "value"):
            if hasattr(node, part):
                self.visit(getattr(node, part))
        self.stack.pop()

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        t = self.tainted(node.value)
        for target in node.targets:
            self.visit_target(target)
            self.bind_target(target, t)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self.visit_target(node.target)
            self.bind_target(node.target, self.tainted(node.value))

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        self.visit_target(node.target)
        if isinstance(node.target, ast.Name):
            self.bind(node.target.id, self.tainted(node.value) or self.tainted(node.target))

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        sc_index = len(self.stack) - 1
        while self.stack[sc_index].kind == "comprehension" and sc_index > 0:
            sc_index -= 1
        saved = self.stack
        self.stack = self.stack[:sc_index + 1]
        self.bind(node.target.id, self.tainted_in(saved, node.value))
        self.stack = saved

    def tainted_in(self, stack: list[_Scope], node: ast.AST) -> bool:
        saved, self.stack = self.stack, stack
        try:
            return self.tainted(node)
        finally:
            self.stack = saved

    def visit_For(self, node: ast.For) -> None:
        self.visit(node.iter)
        self.visit_target(node.target)
        self.bind_target(node.target, self.tainted(node.iter))
        for stmt in node.body + node.orelse:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.visit_target(item.optional_vars)
                self.bind_target(item.optional_vars, self.tainted(item.context_expr))
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bind(node.name, False)
        for stmt in node.body:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.bind(a.asname or a.name.split(".")[0], False)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for a in node.names:
            if a.name != "*":
                self.bind(a.asname or a.name, False)

    def visit_target(self, target: ast.AST) -> None:
        """Loads inside a store target (subscript values, attribute owners)."""
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            self.visit(target.value)
            if isinstance(target, ast.Subscript):
                self.visit(target.slice)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.visit_target(elt)
        elif isinstance(target, ast.Starred):
            self.visit_target(target.value)

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        # a student value passed to a function defined in this cell taints that parameter
        if isinstance(node.func, ast.Name) and node.func.id in self.defs and not self.name_tainted(node.func.id):
            fdef = self.defs[node.func.id]
            sc = self.scopes.get(id(fdef))
            if sc is None:
                return
            for name, arg in zip(sc.params, node.args, strict=False):
                if isinstance(arg, ast.Starred):
                    break
                if self.tainted(arg) and name not in sc.tainted:
                    sc.tainted.add(name)
                    self.changed = True
            for kw in node.keywords:
                if kw.arg and self.tainted(kw.value) and kw.arg not in sc.tainted:
                    sc.tainted.add(kw.arg)
                    self.changed = True


# --------------------------------------------------------------------------- the rewriter


@dataclass
class Site:
    index: int
    kind: str            # "val", "call", "check"
    text: str            # the expression, for messages
    check: str = ""      # for "check": the kind of check
    student: ast.expr | None = None   # for "check": the student argument


@dataclass
class RewrittenCell:
    """A test cell with its student-touching expressions wrapped (same code for kernel and replay)."""

    source: str                     # what the kernel executes
    tree: ast.Module                # what the replay executes
    sites: dict[int, Site]
    defined: set[str]               # module-level names the cell binds with trusted values
    tainted: set[str]               # module-level names the cell binds with student values
    has_result: bool                # the last statement is an expression (nbgrader's partial credit)


def _text(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:
        text = "<expression>"
    return text if len(text) <= 120 else text[:117] + "…"


def _thunk(expr: ast.expr) -> ast.Lambda:
    return ast.Lambda(args=ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                                         kwarg=None, defaults=[]), body=expr)


class _Rewriter(ast.NodeTransformer):
    def __init__(self, analysis: _Analysis, check_names: dict[str, set[str]], first_site: int) -> None:
        self.a = analysis
        self.check_names = check_names   # {"attr": module aliases of grader.checks, "name": {local: check}}
        self.sites: dict[int, Site] = {}
        self.next = first_site
        self.stack: list[_Scope] = []

    def new_site(self, kind: str, node: ast.AST, **kw: Any) -> int:
        i = self.next
        self.next += 1
        self.sites[i] = Site(i, kind, _text(node), **kw)
        return i

    # -- scopes follow the analysis ----------------------------------------------------
    def _enter(self, node: ast.AST) -> None:
        self.stack.append(self.a.scopes[id(node)])
        self.a.stack = self.stack

    def _leave(self) -> None:
        self.stack.pop()
        self.a.stack = self.stack

    def visit_Module(self, node: ast.Module) -> ast.Module:
        self._enter(node)
        node.body = [self.visit(s) for s in node.body]
        self._leave()
        return node

    def _visit_function(self, node: Any) -> Any:
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        node.args.kw_defaults = [self.visit(d) if d is not None else None for d in node.args.kw_defaults]
        if not isinstance(node, ast.Lambda):
            node.decorator_list = [self.visit(d) for d in node.decorator_list]
        self._enter(node)
        if isinstance(node, ast.Lambda):
            node.body = self.visit(node.body)
        else:
            node.body = [self.visit(s) for s in node.body]
        self._leave()
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.ClassDef:
        node.bases = [self.visit(b) for b in node.bases]
        self._enter(node)
        node.body = [self.visit(s) for s in node.body]
        self._leave()
        return node

    def _visit_comprehension(self, node: Any) -> Any:
        gens = node.generators
        gens[0].iter = self.visit(gens[0].iter)
        self._enter(node)
        for i, gen in enumerate(gens):
            if i:
                gen.iter = self.visit(gen.iter)
            gen.ifs = [self.visit(c) for c in gen.ifs]
        for part in ("elt", "key", "value"):
            if hasattr(node, part):
                setattr(node, part, self.visit(getattr(node, part)))
        self._leave()
        return node

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _visit_comprehension

    # -- statements with targets ---------------------------------------------------------
    def _target(self, target: ast.AST) -> ast.AST:
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            target.value = self.visit(target.value)
            if isinstance(target, ast.Subscript):
                target.slice = self.visit(target.slice)
        elif isinstance(target, (ast.Tuple, ast.List)):
            target.elts = [self._target(e) for e in target.elts]
        elif isinstance(target, ast.Starred):
            target.value = self._target(target.value)
        return target

    def visit_Assign(self, node: ast.Assign) -> ast.Assign:
        node.value = self.visit(node.value)
        node.targets = [self._target(t) for t in node.targets]
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AnnAssign:
        if node.value is not None:
            node.value = self.visit(node.value)
        node.target = self._target(node.target)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AugAssign:
        node.value = self.visit(node.value)
        node.target = self._target(node.target)
        return node

    def visit_Delete(self, node: ast.Delete) -> ast.Delete:
        node.targets = [self._target(t) for t in node.targets]
        return node

    def visit_For(self, node: ast.For) -> ast.For:
        node.iter = self.visit(node.iter)
        node.target = self._target(node.target)
        node.body = [self.visit(s) for s in node.body]
        node.orelse = [self.visit(s) for s in node.orelse]
        return node

    def visit_With(self, node: ast.With) -> ast.With:
        for item in node.items:
            item.context_expr = self.visit(item.context_expr)
            if item.optional_vars is not None:
                item.optional_vars = self._target(item.optional_vars)
        node.body = [self.visit(s) for s in node.body]
        return node

    def visit_NamedExpr(self, node: ast.NamedExpr) -> ast.NamedExpr:
        node.value = self.visit(node.value)
        return node

    # -- expressions -----------------------------------------------------------------------
    def _rooted(self, node: ast.AST) -> bool:
        """Is the value of ``node`` the student's (a tainted name, or an attribute/item/call of one)?"""
        if isinstance(node, ast.Name):
            return isinstance(node.ctx, ast.Load) and self.a.name_tainted(node.id)
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            return self._rooted(node.value)
        if isinstance(node, ast.Call):
            return self._rooted(node.func)
        return False

    def _check_kind(self, call: ast.Call) -> str | None:
        f = call.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in self.check_names["attr"] \
                and not self.a.name_tainted(f.value.id):
            return _check_kind(f.attr)
        if isinstance(f, ast.Name) and f.id in self.check_names["name"] and not self.a.name_tainted(f.id):
            return _check_kind(self.check_names["name"][f.id])
        return None

    def _args(self, node: ast.Call) -> tuple[ast.List, ast.List]:
        pos = []
        for arg in node.args:
            starred = isinstance(arg, ast.Starred)
            value = arg.value if starred else arg
            cmp = not self.a.tainted(value)
            pos.append(ast.Tuple(elts=[ast.Constant(cmp), ast.Constant(starred), self.visit(value)], ctx=ast.Load()))
        kws = []
        for kw in node.keywords:
            cmp = not self.a.tainted(kw.value)
            kws.append(ast.Tuple(elts=[ast.Constant(cmp), ast.Constant(kw.arg), self.visit(kw.value)], ctx=ast.Load()))
        return ast.List(elts=pos, ctx=ast.Load()), ast.List(elts=kws, ctx=ast.Load())

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if self._rooted(node.func):
            site = self.new_site("call", node)
            pos, kws = self._args(node)
            return ast.Call(func=ast.Name("__dlc_call__", ast.Load()),
                            args=[ast.Constant(site), _thunk(node.func), pos, kws], keywords=[])
        kind = self._check_kind(node)
        if kind:
            student = node.args[0] if node.args else next(
                (k.value for k in node.keywords if k.arg in ("student", "student_fn", "student_cls")), None)
            site = self.new_site("check", node, check=kind, student=student)
            self.generic_visit(node)
            return ast.Call(func=ast.Name("__dlc_check__", ast.Load()), args=[ast.Constant(site), _thunk(node)],
                            keywords=[])
        self.generic_visit(node)
        return node

    def _wrap_value(self, node: ast.expr) -> ast.AST:
        site = self.new_site("val", node)
        return ast.Call(func=ast.Name("__dlc_val__", ast.Load()), args=[ast.Constant(site), _thunk(node)],
                        keywords=[])

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if self._rooted(node):
            return self._wrap_value(node)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and self._rooted(node):
            return self._wrap_value(node)
        self.generic_visit(node)
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and self._rooted(node):
            return self._wrap_value(node)
        self.generic_visit(node)
        return node


def rewrite_cell(source: str, trusted_globals: set[str], *, check_aliases: dict[str, str] | None = None,
                 first_site: int = 0) -> RewrittenCell:
    """Wrap every student-touching expression of a test cell (see the module docstring).

    ``trusted_globals``: names the cell may use that are not the student's (imports of the locked cells,
    names bound by earlier test cells). ``check_aliases``: local name -> dotted path of imports, used to
    recognise ``checks.check_layer`` and ``from grader.checks import check_layer``.
    Raises SyntaxError when the cell cannot be parsed.
    """
    tree = ast.parse(python_source(source))
    aliases = dict(check_aliases or {})
    aliases.update(imports_of(tree))
    check_names: dict[str, Any] = {"attr": {n for n, p in aliases.items() if p == "grader.checks"},
                                   "name": {n: p.rsplit(".", 1)[1] for n, p in aliases.items()
                                            if p.startswith("grader.checks.")}}
    analysis = _Analysis(set(trusted_globals), None)
    for _ in range(20):
        analysis.changed = False
        analysis.stack = []
        analysis.visit(tree)
        if not analysis.changed:
            break
    module_scope = analysis.scopes[id(tree)]
    has_result = bool(tree.body) and isinstance(tree.body[-1], ast.Expr)
    rewriter = _Rewriter(analysis, check_names, first_site)
    tree = rewriter.visit(tree)
    if has_result:
        last = tree.body[-1]
        tree.body[-1] = ast.Assign(targets=[ast.Name("__dlc_result__", ast.Store())], value=last.value)
    ast.fix_missing_locations(tree)
    kernel = ast.unparse(tree)
    if has_result:
        kernel += "\n__dlc_result__"
    return RewrittenCell(source=kernel, tree=tree, sites=rewriter.sites,
                         defined=module_scope.bound - module_scope.tainted, tainted=set(module_scope.tainted),
                         has_result=has_result)


# --------------------------------------------------------------------------- decoding kernel records


class Opaque:
    """Stands for an object of the student's notebook that is not plain data (a layer, a class, a function)."""

    def __init__(self, description: str) -> None:
        object.__setattr__(self, "_description", str(description)[:120])

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise ReplayError(f"this test needs to use {self._description} from your notebook directly, which the "
                          "grader cannot do outside your notebook (a problem of the test, please tell the instructor)")

    __call__ = __getattr__ = __getitem__ = __iter__ = __len__ = __add__ = __mul__ = __array__ = _refuse

    def __setattr__(self, name: str, value: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{self._description}>"


class ReplayError(Exception):
    """The test cannot be re-run from the notebook's records."""


class StudentCodeError(Exception):
    """The student's code raised this (in the notebook); re-raised by the replay."""


_EXC_CLASSES: dict[str, type] = {}


def _student_exception(error: dict, text: str) -> BaseException:
    ename = str(error.get("ename", "Exception"))[:80]
    evalue = str(error.get("evalue", ""))[:2000]
    base = getattr(builtins, ename, None)
    if not (isinstance(base, type) and issubclass(base, Exception)):
        base = None
    key = ename if base is not None else "StudentCodeError"
    cls = _EXC_CLASSES.get(key)
    if cls is None:
        bases = (base, StudentCodeError) if base is not None and base is not Exception else (StudentCodeError,)
        try:
            cls = type(ename if base is not None else "StudentCodeError", bases, {})
        except TypeError:
            cls = StudentCodeError
        _EXC_CLASSES[key] = cls
    where = [str(w)[:300] for w in error.get("where", [])][:3]
    if text.startswith("`") and "(" not in text:  # a value, not a call: `ReLU`: NameError: ...
        message = f"{text}: {ename}" + (f": {evalue}" if evalue else "")
    else:
        message = f"{text} raised {ename}" + (f": {evalue}" if evalue else "")
    if where:
        message += " (in " + " → ".join(where) + ")"
    exc = cls(message)
    return exc


def decode(v: Any, depth: int = 0) -> Any:
    """Plain values from a record (see grader.recorder.encode); Opaque for everything else."""
    from grader.checks import _decode_array

    if depth > 60:
        raise ValueError("record too deeply nested")
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, list):
        return [decode(x, depth + 1) for x in v]
    if isinstance(v, dict):
        if "__ndarray__" in v:
            return _decode_array(v)
        if "__tuple__" in v:
            return tuple(decode(x, depth + 1) for x in v["__tuple__"])
        if "__float__" in v:
            return float(str(v["__float__"]))
        if "__complex__" in v:
            re_, im = v["__complex__"]
            return complex(float(decode(re_)), float(decode(im)))
        if "__bytes__" in v:
            return base64.b64decode(str(v["__bytes__"]), validate=True)
        if "__range__" in v:
            return range(*[int(x) for x in v["__range__"]])
        if "__dict__" in v:
            out = {}
            for pair in v["__dict__"]:
                k, x = pair
                k = decode(k, depth + 1)
                try:
                    hash(k)
                except TypeError:
                    k = repr(k)
                out[k] = decode(x, depth + 1)
            return out
        if "__opaque__" in v:
            return Opaque(f"an object ({v['__opaque__']})")
    raise ValueError("unexpected value in a record")


def _encode_local(v: Any) -> Any:
    """The replay's own value in the form a record would have (for comparing arguments)."""
    from grader.recorder import _safe_encode
    if isinstance(v, Opaque):
        return {"__opaque__": "x"}
    return _safe_encode(v)


def _same(kernel: Any, local: Any) -> bool:
    from grader.checks import same_inputs
    if isinstance(kernel, dict) and "__opaque__" in kernel:
        return isinstance(local, dict) and "__opaque__" in local
    if isinstance(local, dict) and "__opaque__" in local:
        return False
    try:
        return same_inputs(decode(kernel), decode(local))
    except (ValueError, TypeError):
        return False


# --------------------------------------------------------------------------- records of one notebook


_LINE = re.compile(r'^\{"site": (\d+), "nested": (true|false)[,}]')


class Records:
    """The kernel's records of one notebook, per site, in the order they were written.

    Lines are kept as text and parsed when the replay takes them (a notebook may write many).
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self.by_site: dict[int, deque] = defaultdict(deque)
        self.broken = 0
        for line in lines:
            m = _LINE.match(line)
            if m is not None:
                if m.group(2) == "false":
                    self.by_site[int(m.group(1))].append(line)
                continue
            try:
                entry = json.loads(line)
                site = int(entry["site"])
            except (ValueError, TypeError, KeyError, RecursionError):
                self.broken += 1
                continue
            if isinstance(entry, dict) and not entry.get("nested"):
                self.by_site[site].append(entry)

    @classmethod
    def from_file(cls, path: str, max_bytes: int = 256 * 2**20) -> Records:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read(max_bytes)
        except OSError:
            text = ""
        return cls(text.splitlines())

    def take(self, site: int) -> dict | None:
        q = self.by_site.get(site)
        while q:
            entry = q.popleft()
            if isinstance(entry, dict):
                return entry
            try:
                parsed = json.loads(entry)
            except (ValueError, RecursionError):
                self.broken += 1
                continue
            if isinstance(parsed, dict):
                return parsed
        return None


# --------------------------------------------------------------------------- the replay


@dataclass
class ReplayResult:
    ok: bool
    stdout: str = ""
    error: tuple[str, str] | None = None    # (ename, message)
    result: Any = None                      # the value of a final expression (partial credit)


class _Runtime:
    """The replay's versions of __dlc_val__ / __dlc_call__ / __dlc_check__, and the checks' replay hook."""

    def __init__(self, cell: RewrittenCell, records: Records, delegation: Any) -> None:
        self.cell = cell
        self.records = records
        self.delegation_fn = delegation
        self.check_site: list[int] = []

    def _entry(self, site: int) -> dict:
        entry = self.records.take(site)
        if entry is None:
            text = self.cell.sites[site].text if site in self.cell.sites else "?"
            raise ReplayError(f"this test did not get as far as `{text}` in your notebook (the cell stopped "
                              "earlier, the kernel died, or something in the notebook changed the test)")
        return entry

    def val(self, site: int, thunk: Any) -> Any:
        entry = self._entry(site)
        if "error" in entry:
            raise _student_exception(entry["error"], f"`{self.cell.sites[site].text}`")
        if "value" not in entry:
            raise ReplayError("a record of your notebook is damaged")
        return decode(entry["value"])

    def call(self, site: int, thunk: Any, args: list, kwargs: list) -> Any:
        entry = self._entry(site)
        recorded = entry.get("args") if isinstance(entry.get("args"), dict) else {}
        n = 0
        for i, (cmp, _starred, value) in enumerate(args):
            if cmp:
                key = f"p{i}"
                if key not in recorded or not _same(recorded[key], _encode_local(value)):
                    self._changed(site)
        for cmp, name, value in kwargs:
            if cmp:
                key = f"k{name}" if name else f"kw{n}"
                if key not in recorded or not _same(recorded[key], _encode_local(value)):
                    self._changed(site)
            n += 1
        if "error" in entry:
            raise _student_exception(entry["error"], f"`{self.cell.sites[site].text}`")
        if "value" not in entry:
            raise ReplayError("a record of your notebook is damaged")
        return decode(entry["value"])

    def _changed(self, site: int) -> None:
        raise ReplayError(f"`{self.cell.sites[site].text}` was called with other arguments in your notebook than "
                          "the test's: something in the notebook changed NumPy's random numbers, the test's data or "
                          "the grader, so this result cannot count")

    def check(self, site: int, thunk: Any) -> Any:
        self.check_site.append(site)
        try:
            return thunk()
        finally:
            self.check_site.pop()

    # -- grader.checks._REPLAY interface --------------------------------------------------------
    def take_check(self, kind: str) -> tuple[Any, Any] | str:
        from grader import checks
        if not self.check_site:
            return "the grader could not match this check to your notebook's records (a problem of the test)"
        site = self.check_site[-1]
        entry = self.records.take(site)
        if entry is None:
            return ("this check did not run in your notebook, or its result was not recorded (the cell stopped "
                    "earlier, or the notebook replaced or changed the grader's check functions)")
        if entry.get("check") != kind or "plan" not in entry or "record" not in entry:
            return "the record of this check in your notebook is damaged or was changed"
        try:
            return checks.from_json(entry["plan"]), checks.from_json(entry["record"])
        except Exception:
            return "the record of this check in your notebook is damaged or was changed"

    def delegation(self, reference: Any) -> str | None:
        if not self.check_site:
            return None
        site = self.cell.sites.get(self.check_site[-1])
        return self.delegation_fn(site.student if site else None, reference)

    def student_label(self) -> str:
        site = self.cell.sites.get(self.check_site[-1]) if self.check_site else None
        if site is not None and isinstance(site.student, ast.Name):
            return site.student.id
        return "your code"


def replay_cell(cell: RewrittenCell, records: Records, namespace: dict, *, label: str = "test cell",
                delegation: Any = None) -> ReplayResult:
    """Run a rewritten test cell in ``namespace`` (trusted modules), taking student values from ``records``."""
    from grader import checks

    rt = _Runtime(cell, records, delegation or (lambda student, reference: None))
    namespace["__dlc_val__"] = rt.val
    namespace["__dlc_call__"] = rt.call
    namespace["__dlc_check__"] = rt.check
    namespace.pop("__dlc_result__", None)
    out = io.StringIO()
    previous = checks._REPLAY
    checks._REPLAY = rt
    try:
        code = compile(cell.tree, f"<{label}>", "exec")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), \
                np.errstate(all="ignore"):
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exec(code, namespace)  # noqa: S102 - instructor's test code, run on plain data
    except AssertionError as exc:
        return ReplayResult(False, out.getvalue(), ("AssertionError", _message(exc)))
    except ReplayError as exc:
        return ReplayResult(False, out.getvalue(), ("NotGraded", _message(exc)))
    except StudentCodeError as exc:
        return ReplayResult(False, out.getvalue(), (type(exc).__name__, _message(exc)))
    except Exception as exc:  # the instructor's test code failed on the student's values
        return ReplayResult(False, out.getvalue(), (type(exc).__name__, _message(exc)))
    finally:
        checks._REPLAY = previous
    return ReplayResult(True, out.getvalue(), None, namespace.get("__dlc_result__") if cell.has_result else None)


def _message(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 4000 else text[:4000] + " …"


# --------------------------------------------------------------------------- delegation, from the source


class SourceIndex:
    """What the student's cells define and import, for deciding delegation from the source."""

    def __init__(self, student_cells: list[str], all_cells: list[str]) -> None:
        self.trees = [t for t in (parse_cell(s) for s in student_cells) if t is not None]
        self.unparsable = len(student_cells) - len(self.trees)
        self.aliases: dict[str, set[str]] = defaultdict(set)
        self.anywhere: set[str] = set()   # top-level names defined by any cell (the instructor's too)
        for src in all_cells:
            tree = parse_cell(src)
            if tree is not None:
                for name, path in imports_of(tree).items():
                    self.aliases[name].add(path)
                for stmt in tree.body:
                    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        self.anywhere.add(stmt.name)
                    elif isinstance(stmt, ast.Assign):
                        self.anywhere.update(n for t in stmt.targets for n in _target_names(t))
        self.defs: dict[str, list[ast.AST]] = defaultdict(list)
        for tree in self.trees:
            for stmt in tree.body:
                self._collect(stmt)
        # module-level aliases of aliases:  A = dlcore.nn.Affine
        for _ in range(3):
            for name, nodes in self.defs.items():
                for node in nodes:
                    if isinstance(node, ast.expr):
                        path = self.dotted(node)
                        if path:
                            self.aliases[name] |= path

    def _collect(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.defs[stmt.name].append(stmt)
        elif isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                for name in _target_names(t):
                    self.defs[name].append(stmt.value)
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) and stmt.value is not None:
            for name in _target_names(stmt.target):
                self.defs[name].append(stmt.value)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for name in imports_of(stmt):
                self.defs[name].append(stmt)
        elif isinstance(stmt, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.stmt):
                    self._collect(child)
                elif isinstance(child, ast.ExceptHandler):
                    for s in child.body:
                        self._collect(s)
            for s in getattr(stmt, "orelse", []) + getattr(stmt, "finalbody", []):
                self._collect(s)

    def dotted(self, node: ast.AST) -> set[str]:
        """Dotted paths an expression like ``F.sigmoid`` or ``dlcore.nn.Affine`` may stand for."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return set()
        bases = self.aliases.get(node.id, set())
        suffix = ".".join(reversed(parts))
        return {f"{b}.{suffix}" if suffix else b for b in bases}


def _target_names(t: ast.AST) -> list[str]:
    if isinstance(t, ast.Name):
        return [t.id]
    if isinstance(t, (ast.Tuple, ast.List)):
        return [n for e in t.elts for n in _target_names(e)]
    if isinstance(t, ast.Starred):
        return _target_names(t.value)
    return []


def resolve_dotted(path: str) -> Any:
    """The dlcore object a dotted path names (only dlcore.* is ever imported), or None."""
    if not (path == "dlcore" or path.startswith("dlcore.")):
        return None
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        modname = ".".join(parts[:cut])
        try:
            if importlib.util.find_spec(modname) is None:
                continue
            obj: Any = importlib.import_module(modname)
        except (ImportError, ValueError, AttributeError):
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


_ALLOWED_BASES = {"dlcore.nn.base.Layer", "dlcore.nn.base.Loss"}


def delegation(index: SourceIndex, student: ast.expr | None, reference: Any) -> str | None:
    """Why the exercise checked with ``student`` uses dlcore's ``reference`` (None when it does not).

    Follows the student's definitions (and the definitions they use) through the solution cells' AST:
    any reference to the reference object itself, a dlcore base class other than Layer/Loss, code the
    grader cannot follow (``eval``, ``__import__``, ``sys.modules``, ...) or the grader's own module.
    """
    import inspect

    if student is None:
        return None
    ref_name = getattr(reference, "__name__", str(reference))
    label = _text(student)

    def verdict(why: str) -> str:
        return (f"{label} uses dlcore's reference implementation: {why}. This exercise asks you to write "
                f"{ref_name} yourself, so it scores zero while it delegates to dlcore (decided from your "
                "notebook's source). You may use NumPy, and dlcore for other things.")

    def is_reference(obj: Any) -> bool:
        return obj is not None and obj is reference

    def check_path(path: str, how: str) -> str | None:
        if path.startswith("grader"):
            return f"{how} the grader's own module ({path})"
        obj = resolve_dotted(path)
        if obj is not None and is_reference(obj):
            return f"{how} dlcore's {ref_name} ({path})"
        return None

    seen: set[str] = set()
    queue: deque[str] = deque()
    roots = [n.id for n in ast.walk(student) if isinstance(n, ast.Name)]
    for name in roots:
        for path in sorted(index.aliases.get(name, set())):
            if path.startswith("grader"):
                return verdict(f"{name} comes from the grader's own module ({path})")
            if is_reference(resolve_dotted(path)):
                return verdict(f"{name} is dlcore's own {ref_name} (imported from {path}), not code written in "
                               "your notebook")
        queue.append(name)
    if roots and not any(index.defs.get(n) for n in roots) and not any(index.aliases.get(n) for n in roots) \
            and not any(n in index.anywhere for n in roots):
        return verdict(f"the grader finds no definition of {', '.join(roots)} in your solution cells (it must be "
                       "written there, not created dynamically)")
    while queue:
        name = queue.popleft()
        if name in seen:
            continue
        seen.add(name)
        for node in index.defs.get(name, []):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for local, path in imports_of(node).items():
                    if local != name:
                        continue
                    why = check_path(path, f"{name} is imported from")
                    if why is None and name in roots and path.startswith("dlcore"):
                        why = f"{name} is imported from dlcore ({path}), not written in your notebook"
                    if why:
                        return verdict(why)
                continue
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    for path in index.dotted(base):
                        obj = resolve_dotted(path)
                        if obj is reference:
                            return verdict(f"{node.name} subclasses dlcore's {ref_name}")
                        if inspect.isclass(obj) and f"{obj.__module__}.{obj.__qualname__}" not in _ALLOWED_BASES:
                            return verdict(f"{node.name} inherits from dlcore's {obj.__module__}.{obj.__qualname__}")
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name):
                    if sub.id in _DYNAMIC:
                        return verdict(f"its code uses `{sub.id}`, which the grader cannot follow; write the "
                                       "computation directly")
                    if sub.id in index.defs and sub.id not in seen:
                        queue.append(sub.id)
                if isinstance(sub, ast.Attribute):
                    chain = _text(sub)
                    if sub.attr in _DYNAMIC or chain in _DYNAMIC:
                        return verdict(f"its code uses `{chain}`, which the grader cannot follow; write the "
                                       "computation directly")
                    for path in index.dotted(sub):
                        why = check_path(path, "it uses")
                        if why:
                            return verdict(why)
                if isinstance(sub, ast.Name):
                    for path in index.aliases.get(sub.id, set()):
                        why = check_path(path, "it uses")
                        if why:
                            return verdict(why)
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    for path in imports_of(sub).values():
                        why = check_path(path, "it imports")
                        if why:
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
PUBLIC_CHECKS = {"check_layer", "check_function", "check_gate", "check_numerical_gradient", "check_value",
                 "check_true", "check_accuracy"}
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
                    "ast_transformers", "set_custom_exc", "_EMITTER", "_REPLAY"}


def _module_available(name: str) -> bool:
    top = name.split(".")[0]
    if top in sys_builtin_modules():
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def sys_builtin_modules() -> set[str]:
    import sys
    return set(sys.builtin_module_names) | set(getattr(sys, "stdlib_module_names", ()))


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
    for label, source in cells:
        tree = parse_cell(source)
        if tree is None:
            continue
        aliases = dict(instructor_imports)
        aliases.update(imports_of(tree))
        modules = {name for name, path in aliases.items()}
        problems: list[str] = []
        grader_names = {n for n, p in instructor_imports.items() if p == "grader" or p.startswith("grader.")}
        for stmt in tree.body:  # rebinding the instructor's `checks` (or another grader import) at top level
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)] \
                if isinstance(stmt, (ast.AnnAssign, ast.AugAssign, ast.For, ast.With)) else []
            names = {n for t in targets if t is not None for n in _target_names(t)}
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(stmt.name)
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                names |= {n for n, p in imports_of(stmt).items() if not p.startswith("grader")}
            for name in sorted(names & grader_names):
                problems.append(f"rebinds `{name}`, the grader's module the tests use")
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                if node.id.startswith("__dlc") or node.id in _FORBIDDEN_NAMES:
                    problems.append(f"`{node.id}`")
            elif isinstance(node, ast.Attribute):
                if node.attr in _FORBIDDEN_ATTRS or node.attr.startswith("__dlc"):
                    problems.append(f"`.{node.attr}`")
                base = node.value
                if isinstance(base, ast.Name) and base.id in modules:
                    path = aliases.get(base.id, base.id)
                    if isinstance(node.ctx, (ast.Store, ast.Del)):
                        problems.append(f"changes `{_text(node)}` (an attribute of the module {path})")
                    elif path in ("sys",) and node.attr == "modules":
                        problems.append("`sys.modules`")
                    elif path in ("os", "posix") and _PROCESS_FUNCTIONS.match(node.attr):
                        problems.append(f"`{_text(node)}` (starts another process)")
                    elif path == "grader.checks" and node.attr not in PUBLIC_CHECKS:
                        problems.append(f"`{_text(node)}` (the grader's internals)")
                    elif path in ("grader",) and node.attr != "checks":
                        problems.append(f"`{_text(node)}` (the grader's internals)")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for local, path in imports_of(node).items():
                    top = path.split(".")[0]
                    if path in ("grader.checks",) or (path.startswith("grader.checks.") and
                                                       path.rsplit(".", 1)[1] in PUBLIC_CHECKS):
                        continue
                    if top in _FORBIDDEN_MODULES or path == "sys.modules":
                        problems.append(f"imports {path}")
                    elif not _module_available(top):
                        problems.append(f"imports {top}, which is not part of the course environment")
                    del local
                if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                    problems.append(f"`from {node.module} import *`")
            elif isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id in ("setattr", "delattr") and node.args and \
                        isinstance(node.args[0], ast.Name) and node.args[0].id in modules:
                    problems.append(f"`{f.id}({node.args[0].id}, ...)` on a module")
                if isinstance(f, ast.Name) and f.id == "vars" and node.args and isinstance(node.args[0], ast.Name) \
                        and node.args[0].id in modules:
                    problems.append(f"`vars({node.args[0].id})`")
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Call) and \
                        isinstance(f.value.func, ast.Name) and f.value.func.id == "get_ipython":
                    if f.attr in ("run_line_magic", "run_cell_magic"):
                        name = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
                        if name not in SAFE_MAGICS:
                            problems.append(f"the magic %{name}" if name else "a computed magic")
                    elif f.attr in ("system", "getoutput"):
                        problems.append("a shell command (`!...`): it starts another process")
                    else:
                        problems.append(f"`get_ipython().{f.attr}`")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    ("__dlc" in node.value or "grader.recorder" in node.value):
                problems.append("a string naming the grader's internals")
        get_ipython_uses = sum(1 for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "get_ipython")
        magic_calls = sum(1 for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                          and isinstance(n.func.value, ast.Call) and isinstance(n.func.value.func, ast.Name)
                          and n.func.value.func.id == "get_ipython")
        if get_ipython_uses > magic_calls:
            problems.append("`get_ipython`")
        for p in dict.fromkeys(problems):
            found.append(f"{label}: {p}")
    return found
