"""Chapter 4 (convolutional networks): plans and judges of the CNN checks (trusted side).

Kinds (the test cells call ``checks.check_<kind>(Student, "reference", ...)``):

    filter2d               a by-hand 2-D correlation or convolution ("correlate" / "convolve")
    im2col, col2im         against dlcore.nn.im2col and by the adjoint identity <im2col(x), y> = <x, col2im(y)>
    cnn_layer              Conv2D / MaxPool2D / AvgPool2D: the layer check (plans.core) plus the CNN causes
                           (kernel not flipped / flipped, dW axes, max-pool routing, avg-pool 1/(KH KW))
    translation_invariance the fraction of max-pooled outputs a one-pixel shift leaves unchanged
    cnn_network            a LeNet-style network built with the grader's layers, against dlcore's layers
    residual_block         y = ReLU(F(x) + x) built with the grader's layers, against dlcore's ResidualBlock
                           and the numerical gradient
    cnn_training           the student's training loop on the grader's network, digits the plan draws;
                           the kernel never sees the test labels, the judge computes the accuracy

Every plan draws its inputs from seeds and runs dlcore's reference; only ``plan.inputs`` reaches the kernel.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from itertools import zip_longest
from typing import Any

import numpy as np

from dlcore import nn
from dlcore.data import load_digits
from dlcore.gradcheck import numerical_gradient
from dlcore.nn.im2col import col2im, im2col, im2col_loop
from grader.kernel.records.cnn import out_size as _out_size
from grader.kinds import Plan, _quiet
from grader.trusted.messages import _FORMULAS, Verdict, _as_array, _close, _rel_error, compare, delegation, incomplete
from grader.trusted.plans import core

# --------------------------------------------------------------------------- helpers


def _show(a: Any, max_size: int = 64) -> str:
    """An array with enough digits to explain a message (small ones in full, large ones by shape)."""
    a = np.asarray(a)
    return f"<array of shape {a.shape}>" if a.size > max_size else \
        np.array2string(a, precision=6, separator=", ", suppress_small=False, max_line_width=100)


def _start(plan: Plan, record: dict, default: str) -> tuple[str, Verdict | None]:
    """The student's name, and the failure before any case: delegation to dlcore, a result missing for a case."""
    name = record.get("origin", {}).get("name", default)
    why = delegation(record.get("origin", {}), plan.reference)
    if why is None and len(record.get("cases", [])) != len(plan.inputs["cases"]):
        why = incomplete(name, len(record.get("cases", [])), len(plan.inputs["cases"]))
    return name, (None if why is None else Verdict(False, message=why))


def _cases(plan: Plan, record: dict) -> Iterator[tuple[int, dict, dict, dict]]:
    """(index, planned inputs, expected, recorded) per case."""
    for ci, (case, exp, got) in enumerate(zip(plan.inputs["cases"], plan.expected["cases"], record["cases"],
                                              strict=True)):
        yield ci, case, exp, got


def _ran_badly(name: str, where: str, ci: int, got: dict, changed: str) -> Verdict | None:
    """The failure when the student's call raised, warned, or changed its input (``changed``: what, and the fix)."""
    if got["error"]:
        return Verdict(False, message=f"{where} raised {got['error']}")
    if got["warnings"]:
        return Verdict(False, message=(
            f"{name} (case {ci + 1}): NumPy warned inside your code ({'; '.join(got['warnings'][:3])}). The exercise "
            "forbids computations that overflow or divide by zero, so this counts as a failure; check the operation "
            "named"))
    return Verdict(False, message=f"{where}: your function changed {changed}") if got["mutated"] else None


def _cause(got: Any, candidates: list[tuple[Any, str]]) -> str | None:
    """The explanation of the first candidate (the result of a known mistake) that ``got`` reproduces."""
    g = _as_array(got)
    if g is None or g.dtype.kind not in "biuf":
        return None
    return next((why for value, why in candidates if np.shape(value) == g.shape and g.size and np.all(np.isfinite(g))
                 and _close(g.astype("float64"), np.asarray(value))), None)


# --------------------------------------------------------------------------- filter2d (by hand)


def _correlate(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """dlcore's im2col (the loop version) times the kernel: y[i, j] = Σ_{p,q} x[i + p, j + q] h[p, q]."""
    kh, kw = h.shape
    col = im2col_loop(x[None, None], (kh, kw))
    return (col @ h.ravel()).reshape(x.shape[0] - kh + 1, x.shape[1] - kw + 1)


_FILTER_FORMULA = {
    "correlate": "y[i, j] = Σ_p Σ_q x[i + p, j + q] · h[p, q]   (the kernel as it is; output (H − KH + 1, W − KW + 1))",
    "convolve": "y[i, j] = Σ_p Σ_q x[i + p, j + q] · h[KH − 1 − p, KW − 1 − q]   (the kernel rotated by 180°, "
                "h[::-1, ::-1])",
}


def plan_filter2d(reference: str, *, cases: Any = None, shapes: Any = (), seed: int = 0) -> Plan:
    """A by-hand 2-D filter, ``reference`` "correlate" or "convolve", on (image, kernel) pairs.

    ``cases``: literal (image, kernel) pairs (nested lists); ``shapes``: ((H, W), (KH, KW)) pairs for
    seeded binary images and integer kernels that change under a 180° rotation.
    """
    if reference not in _FILTER_FORMULA:
        raise ValueError(f"grader: check_filter2d needs 'correlate' or 'convolve', got {reference!r}")
    rng = np.random.default_rng(seed)
    pairs = [(np.array(x, dtype="float64"), np.array(h, dtype="float64")) for x, h in (cases or [])]
    for img_shape, k_shape in shapes:
        x = rng.integers(0, 2, size=tuple(img_shape)).astype("float64")
        for _ in range(100):   # a kernel that changes when flipped along each axis of length > 1
            h = rng.integers(-2, 3, size=tuple(k_shape)).astype("float64")
            if not ((h.shape[0] > 1 and np.array_equal(h, h[::-1, :]))
                    or (h.shape[1] > 1 and np.array_equal(h, h[:, ::-1]))):
                break
        pairs.append((x, h))
    flip = reference == "convolve"    # the expected result, the other filter's, one axis flipped only
    expected = [{"y": _correlate(x, h[::-1, ::-1] if flip else h), "other": _correlate(x, h if flip else h[::-1, ::-1]),
                 "rows": _correlate(x, h[::-1, :]), "cols": _correlate(x, h[:, ::-1])} for x, h in pairs]
    return Plan("filter2d", reference, {"cases": [{"x": x, "h": h} for x, h in pairs]}, {"cases": expected})


def judge_filter2d(plan: Plan, record: dict) -> Verdict:
    ref = plan.reference
    name, bad = _start(plan, record, "your function")
    if bad:
        return bad
    for ci, case, exp, got in _cases(plan, record):
        x, h = case["x"], case["h"]
        where = (f"{name}(x, h) with x =\n{_show(x)}\nand h =\n{_show(h)}\n[case {ci + 1} of "
                 f"{len(plan.inputs['cases'])}]")
        if bad := _ran_badly(name, where, ci, got, "x or h in place; compute a new array"):
            return bad
        flipped = "rotated by 180°" if ref == "correlate" else "as it is"
        fix = "rotate it by 180° (both axes)" if ref == "convolve" else "use h as it is"
        problem = compare("the result", got["value"], exp["y"], rtol=1e-9, candidates=[
            (exp["other"], ("the kernel is not flipped: a convolution uses h rotated by 180° (h[::-1, ::-1]); "
                            "without the flip you computed a correlation") if ref == "convolve" else
             ("you flipped the kernel (h[::-1, ::-1]), which makes a convolution; the correlation that CNN layers "
              "compute uses h as it is")),
            (exp["rows"], f"the kernel is flipped along the rows only (h[::-1, :]); {fix}"),
            (exp["cols"], f"the kernel is flipped along the columns only (h[:, ::-1]); {fix}"),
        ])
        if problem:
            g = _as_array(got["value"])
            hh, hw = x.shape[0] - h.shape[0] + 1, x.shape[1] - h.shape[1] + 1
            if g is not None and g.shape == x.shape and g.shape != (hh, hw):
                problem += (f"\n  likely cause: the output has the input's size {x.shape}; without padding only "
                            f"(H − KH + 1, W − KW + 1) = {(hh, hw)} positions fit the kernel")
            elif g is not None and g.shape == (x.shape[0] + h.shape[0] - 1, x.shape[1] + h.shape[1] - 1):
                problem += "\n  likely cause: a 'full' output (the kernel also hanging over the border); use 'valid'"
            return Verdict(False, message=(f"{where}:\n- {problem}\n  expected\n{_show(exp['y'])}\n  "
                                           f"formula: {_FILTER_FORMULA[ref]} (the other one uses h {flipped})"))
    return Verdict(True, summary=f"{name}: matches the {ref} of {len(plan.inputs['cases'])} image(s) exactly")


# --------------------------------------------------------------------------- im2col / col2im


def _geometry(shape: Any, kh: int, kw: int, stride: int = 1, pad: int = 0) -> tuple:
    """One case of ``cases=[(x_shape, KH, KW, stride, pad), ...]`` (stride and pad may be left out), as ints."""
    return tuple(int(s) for s in shape), int(kh), int(kw), int(stride), int(pad)


def plan_im2col(reference: str = "dlcore.nn.im2col.im2col", *, cases: Any = (((2, 3, 5, 5), 3, 3, 1, 0),),
                seed: int = 0) -> Plan:
    """``im2col(x, kh, kw, stride, pad)`` on seeded x for every (x_shape, KH, KW, stride, pad) in ``cases``."""
    rng = np.random.default_rng(seed)
    planned, expected = [], []
    for shape, kh, kw, stride, pad in (_geometry(*c) for c in cases):
        x = np.round(rng.standard_normal(shape), 3)
        col = im2col(x, (kh, kw), stride, pad)
        y = np.round(rng.standard_normal(col.shape), 3)
        planned.append({"x": x, "kh": kh, "kw": kw, "stride": stride, "pad": pad})
        expected.append({"col": col, "last": im2col(x, (kh, kw), stride, pad, channels_last=True), "y": y,
                         "adjoint": float(np.sum(x * col2im(y, shape, (kh, kw), stride, pad)))})
    return Plan("im2col", reference, {"cases": planned, "reference": "im2col"}, {"cases": expected})


def _col2im_assign(col: np.ndarray, x_shape: tuple, kh: int, kw: int, s: int, p: int) -> np.ndarray:
    """col2im with '=' instead of '+=' (a known mistake): later windows overwrite earlier ones."""
    n, c, h, w = x_shape
    oh, ow = _out_size(h, w, kh, kw, s, p)
    rows = col.reshape(n, oh, ow, c, kh, kw)
    out = np.zeros((n, c, h + 2 * p, w + 2 * p))
    for a in range(oh):
        for b in range(ow):
            out[:, :, a * s:a * s + kh, b * s:b * s + kw] = rows[:, a, b]
    return out[:, :, p:p + h, p:p + w]


def plan_col2im(reference: str = "dlcore.nn.im2col.col2im", *, cases: Any = (((2, 3, 5, 5), 3, 3, 1, 0),),
                seed: int = 0) -> Plan:
    """``col2im(col, x_shape, kh, kw, stride, pad)`` on seeded col for every geometry in ``cases``."""
    rng = np.random.default_rng(seed)
    planned, expected = [], []
    for shape, kh, kw, stride, pad in (_geometry(*c) for c in cases):
        n, c, h, w = shape
        oh, ow = _out_size(h, w, kh, kw, stride, pad)
        col = np.round(rng.standard_normal((n * oh * ow, c * kh * kw)), 3)
        x = np.round(rng.standard_normal(shape), 3)
        planned.append({"col": col, "x_shape": list(shape), "kh": kh, "kw": kw, "stride": stride, "pad": pad})
        expected.append({"dx": col2im(col, shape, (kh, kw), stride, pad), "x": x,
                         "assign": _col2im_assign(col, shape, kh, kw, stride, pad),
                         "last": col2im(col, shape, (kh, kw), stride, pad, channels_last=True),
                         "adjoint": float(np.sum(im2col(x, (kh, kw), stride, pad) * col))})
    return Plan("col2im", reference, {"cases": planned, "reference": "col2im"}, {"cases": expected})


def _im2col_cause(g: np.ndarray, exp: dict, shape: tuple, kh: int, kw: int, s: int, p: int) -> str | None:
    """A column matrix with the rows of another geometry: the padding or the stride was ignored."""
    n, _, h, w = shape
    if g.ndim != 2 or g.shape == exp["col"].shape:
        return None
    (nopad_h, nopad_w), (nostride_h, nostride_w) = _out_size(h, w, kh, kw, s, 0), _out_size(h, w, kh, kw, 1, p)
    if p and g.shape[0] == n * nopad_h * nopad_w:
        return f"the padding pad={p} is ignored (pad x with np.pad first)"
    if s != 1 and g.shape[0] == n * nostride_h * nostride_w:
        return f"the stride {s} is ignored (windows start at p·s, q·s)"
    return None


def _col2im_cause(g: np.ndarray, exp: dict, shape: tuple, kh: int, kw: int, s: int, p: int) -> str | None:
    """An image gradient of the padded shape: the padding was not cut off."""
    n, c, h, w = shape
    if p and g.shape == (n, c, h + 2 * p, w + 2 * p):
        return (f"the padding is not removed: you returned x_pad of shape {g.shape}; cut it off, "
                f"x_pad[:, :, {p}:{p} + H, {p}:{p} + W]")
    return None


#: What differs between the im2col and col2im checks: the student's input, the compared result (its label, its
#: key in expected, the known mistakes), the shape-based cause, the formula, the adjoint identity's failure.
_PATCHES = {
    "im2col": {
        "given": "x", "label": "the column matrix", "want": "col", "cause": _im2col_cause, "other": "y",
        "mistakes": [("last", "the columns are ordered (i, j, c), channels last; expected (c, i, j): each row is the "
                              "patch x_pad[n, :, p·s : p·s + KH, q·s : q·s + KW] flattened as it is, (C, KH, KW)")],
        "formula": "col[(n, p, q), (c, i, j)] = x_pad[n, c, p·s + i, q·s + j], shape (N·OH·OW, C·KH·KW) = "
                   "({rows}, {cols}), OH = (H + 2·pad − KH) // s + 1 = {oh}",
        "adjoint": "⟨im2col(x), y⟩ = {got:.9g} but ⟨x, col2im(y)⟩ = {want:.9g}: the adjoint identity fails"},
    "col2im": {
        "given": "col", "label": "the image gradient", "want": "dx", "cause": _col2im_cause, "other": "x",
        "mistakes": [("assign", "overlapping windows overwrite each other: add every patch back with += (an entry "
                                "that lies in several windows collects all their values)"),
                     ("last", "the columns are read as (i, j, c), channels last; they are (c, i, j): reshape each "
                              "row to (C, KH, KW)")],
        "formula": "dx_pad[n, c, p·s + i, q·s + j] += col[(n, p, q), (c, i, j)], then dx = dx_pad without its padding",
        "adjoint": "⟨x, col2im(y)⟩ = {got:.9g} but ⟨im2col(x), y⟩ = {want:.9g}: col2im is not the adjoint "
                   "(transpose) of im2col"},
}


def judge_im2col(plan: Plan, record: dict) -> Verdict:
    """im2col or col2im (:data:`_PATCHES` by the plan's kind): the result against dlcore's on every geometry, then
    the adjoint identity ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩ with the plan's other operand and dlcore's other function."""
    kind, spec = plan.kind, _PATCHES[plan.kind]
    name, bad = _start(plan, record, kind)
    if bad:
        return bad
    sums = []
    for ci, case, exp, got in _cases(plan, record):
        kh, kw, s, p, given = case["kh"], case["kw"], case["stride"], case["pad"], case[spec["given"]]
        shape = tuple(case.get("x_shape", given.shape))
        n, c, h, w = shape
        oh, ow = _out_size(h, w, kh, kw, s, p)
        where = (f"{name}({spec['given']} of shape {given.shape}{'' if kind == 'im2col' else f', x_shape={shape}'}, "
                 f"KH={kh}, KW={kw}, stride={s}, pad={p}) [case {ci + 1} of {len(plan.inputs['cases'])}]")
        if bad := _ran_badly(name, where, ci, got, f"{spec['given']} in place; compute a new array"):
            return bad
        if problem := compare(spec["label"], got["value"], exp[spec["want"]], rtol=1e-12,
                              candidates=[(exp[key], why) for key, why in spec["mistakes"]]):
            g = _as_array(got["value"])
            cause = None if g is None else spec["cause"](g, exp, shape, kh, kw, s, p)
            formula = spec["formula"].format(rows=n * oh * ow, cols=c * kh * kw, oh=oh)
            return Verdict(False, message=(f"{where}:\n- {problem}" + (f"\n  likely cause: {cause}" if cause else "")
                                           + f"\n  formula: {formula}"))
        dot = float(np.sum(np.asarray(got["value"], dtype="float64") * exp[spec["other"]]))
        if not np.isclose(dot, exp["adjoint"], rtol=1e-9, atol=1e-9):
            return Verdict(False, message=f"{where}: " + spec["adjoint"].format(got=dot, want=exp["adjoint"]))
        sums.append(dot)
    return Verdict(True, summary=f"{name}: matches dlcore on {len(sums)} geometries (stride, padding), and "
                                 f"⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩ holds (e.g. {sums[0]:.6g})")


judge_col2im = judge_im2col


# --------------------------------------------------------------------------- Conv2D, MaxPool2D, AvgPool2D


_LAYER_FORMULAS = {
    "Conv2D": {"forward": "y[n, o, p, q] = b[o] + Σ_{c,i,j} W[o, c, i, j] · x_pad[n, c, p·s + i, q·s + j] "
                          "(= col · W_matᵀ + b, no kernel flip)",
               "dx": "dx = col2im(dY_mat · W_mat) with W_mat = W.reshape(C_out, −1)",
               "W": "dW = (dY_matᵀ · col).reshape(C_out, C_in, KH, KW), dY_mat = dY as (N·OH·OW, C_out)",
               "b": "db[o] = Σ_{n,p,q} dY[n, o, p, q]"},
    "MaxPool2D": {"forward": "y[n, c, p, q] = max_{i,j} x_pad[n, c, p·s + i, q·s + j]",
                  "dx": "dL/dx = dL/dy at the argmax of each window, 0 at the other entries"},
    "AvgPool2D": {"forward": "y[n, c, p, q] = (1 / (KH·KW)) Σ_{i,j} x_pad[n, c, p·s + i, q·s + j]",
                  "dx": "dL/dx[each entry of the window] += dL/dy / (KH·KW)"},
}


#: core.judge_layer finds a layer's formulas by its name here: the CNN layers' are registered with the others.
_FORMULAS.update(_LAYER_FORMULAS)


def _layer_causes(lp: Plan, case: dict, exp: dict) -> dict[str, list[tuple[Any, str]]]:
    """(value a known mistake gives, explanation) per quantity ("forward", "dx", "W") for one case of the layer
    plan ``lp`` (grader.trusted.plans.core.plan_layer's)."""
    name, args, kwargs = lp.info["name"], lp.inputs["args"], lp.inputs["kwargs"]
    x, dy = case["inputs"][0], case["dy"]

    def run(cls: Any, params: dict) -> tuple[np.ndarray, np.ndarray]:
        layer = cls(*args, **kwargs)
        for k, v in params.items():
            layer.params[k] = v.copy()
        return np.asarray(layer.forward(x.copy())), np.asarray(layer.backward(dy.copy()))

    if name == "Conv2D":
        w, dw = lp.inputs["params"]["W"], exp["grads"]["W"]
        y_f, dx_f = run(nn.Conv2D, dict(lp.inputs["params"], W=w[:, :, ::-1, ::-1].copy()))
        co, ci, kh, kw = dw.shape
        return {"forward": [(y_f, "forward flips the kernel (a true convolution); a CNN layer computes the "
                                  "correlation with W as it is: y = col · W_matᵀ + b")],
                "dx": [(dx_f, "dx uses the kernel flipped the wrong way: dL/dx is the full convolution of dY with "
                              "W, i.e. the padded dY correlated with W rotated by 180°; simplest: "
                              "dx = col2im(dY_mat · W_mat) with W as it is (no flip at all)")],
                "W": [(dw[:, :, ::-1, ::-1], "dW is rotated by 180° (kernel flipped): dW[o, c, i, j] = "
                                             "Σ dY[n, o, p, q] · x_pad[n, c, p·s + i, q·s + j], no flip"),
                      (dw.transpose(1, 0, 2, 3), "dW has its channel axes swapped (C_in, C_out, …): dW_mat = "
                                                 "dY_matᵀ · col has shape (C_out, C_in·KH·KW); reshape it to "
                                                 "(C_out, C_in, KH, KW) — do not transpose"),
                      (dw.reshape(co, -1).T.reshape(co, ci, kh, kw),
                       "dW was reshaped from colᵀ · dY_mat (shape (C_in·KH·KW, C_out)) without transposing it first"),
                      (dw.transpose(0, 1, 3, 2), "dW has the kernel's row and column axes (KH, KW) swapped")]}
    if name not in ("MaxPool2D", "AvgPool2D"):
        return {}
    k = args[0] if args else kwargs.get("kernel_size")
    kh, kw = (k, k) if isinstance(k, int) else tuple(k)
    (y_avg, dx_avg), (y_max, dx_max) = run(nn.AvgPool2D, {}), run(nn.MaxPool2D, {})
    if name == "MaxPool2D":
        return {"forward": [(y_avg, "forward averages the window; max-pooling takes its maximum")],
                "dx": [(dx_avg * (kh * kw), "backward routes dL/dy to every cell of the window; only the window's "
                                            "maximum (its argmax) gets the gradient, the other cells get 0"),
                       (dx_avg, "backward spreads dL/dy evenly over the window (that is average pooling); only the "
                                "argmax gets it, undivided")]}
    return {"forward": [(y_avg * (kh * kw), f"forward sums the window; divide by KH·KW = {kh * kw}"),
                        (y_max, "forward takes the maximum; average pooling takes the mean")],
            "dx": [(dx_avg * (kh * kw), f"backward misses the factor 1/(KH·KW) = 1/{kh * kw}: every cell of the "
                                        "window gets dL/dy / (KH·KW)"),
                   (dx_max, "backward routes the gradient to the maximum; average pooling spreads it evenly")]}


def plan_cnn_layer(reference: str, *, args: Any = (), kwargs: Any = None, shapes: Any = ((2, 1, 5, 5),),
                   seed: int = 0) -> Plan:
    """A CNN layer (Conv2D, MaxPool2D, AvgPool2D) against dlcore's and numerical gradients, with CNN causes.

    Same options as ``check_layer``: the layer is built with ``args``/``kwargs`` on seeded float64
    parameters and run on seeded inputs of every shape in ``shapes``.
    """
    lp = core.plan_layer(reference, args=tuple(args), kwargs=dict(kwargs or {}), shapes=shapes, seed=seed)
    name = lp.info["name"]
    with _quiet():
        causes = [_layer_causes(lp, case, exp) for case, exp in zip(lp.inputs["cases"], lp.expected["cases"],
                                                                    strict=True)]
    inputs = {"args": lp.inputs["args"], "kwargs": lp.inputs["kwargs"], "params": lp.inputs["params"],
              "cases": lp.inputs["cases"], "helpers": ["im2col", "col2im"] if name == "Conv2D" else [],
              "reference": name}
    expected = {"layer": lp, "causes": causes}
    return Plan("cnn_layer", reference, inputs, expected, {"name": name})


def judge_cnn_layer(plan: Plan, record: dict) -> Verdict:
    """The layer check (grader.trusted.plans.core.judge_layer on the layer plan in ``plan.expected``) with the CNN
    causes; says which earlier exercises were replaced by the grader's own while the layer was checked."""
    verdict = _judge_cnn_layer(plan.expected["layer"], plan.expected["causes"], record)
    if used := record.get("substituted"):
        note = f"run with the grader's {' and '.join(used)}, so that only this exercise counts here"
        verdict = (dataclasses.replace(verdict, summary=f"{verdict.summary} ({note})") if verdict.ok
                   else dataclasses.replace(verdict, message=f"{verdict.message}\n{note}"))
    return verdict


def _judge_cnn_layer(lp: Plan, all_causes: list, record: dict) -> Verdict:
    name = (record.get("provenance") or {}).get("name", lp.info["name"])
    if record.get("warnings"):
        return Verdict(False, message=(
            f"{name}: NumPy warned inside your layer ({'; '.join(record['warnings'][:3])}); the exercise forbids "
            "computations that overflow or divide by zero, so this counts as a failure"))
    verdict = core.judge_layer(lp, record)
    if verdict.ok or len(record["cases"]) != len(lp.inputs["cases"]):
        return verdict
    found = []
    for case, exp, got, causes in zip(lp.inputs["cases"], lp.expected["cases"], record["cases"], all_causes,
                                      strict=False):
        if got.get("forward_error") or got.get("backward_error"):
            break
        if why := _cause(got.get("forward"), causes.get("forward", [])):
            found.append(f"forward: {why}")
        back = got.get("backward") or []
        if not why and back:
            if why := _cause(back[0], causes.get("dx", [])):
                found.append(f"dx: {why}")
        for key in ("W", "b"):
            g = got.get("grads", {}).get(key)
            if g is None or key not in exp["grads"]:
                continue
            if why := _cause(g, causes.get(key, [])):
                found.append(f"d{key}: {why}")
            elif key == "b" and np.shape(g) != exp["grads"]["b"].shape and np.ndim(g) > 1:
                found.append("db: sum dY over the batch and both spatial axes, np.sum(dy, axis=(0, 2, 3)), to get "
                             f"shape {exp['grads']['b'].shape}")
        one_case = dataclasses.replace(lp, inputs={**lp.inputs, "cases": [case]},
                                       expected={**lp.expected, "cases": [exp]})
        if found or not core.judge_layer(one_case, {**record, "cases": [got]}).ok:
            break
    if not found:
        return verdict
    # the specific causes replace the generic guesses ("12 of 96 entries differ", "off by a constant factor")
    kept = [line for line in verdict.message.split("\n")
            if not re.match(r"\s*likely cause: (\d+ of \d+ entries differ|off by a constant factor)", line)]
    return Verdict(False, message="\n".join(kept) + "\n" + "\n".join(f"- likely cause ({e})" for e in found))


# --------------------------------------------------------------------------- translation invariance


def _shift_right(x: np.ndarray, s: int) -> np.ndarray:
    out = np.zeros_like(x)
    out[..., s:] = x[..., :-s]
    return out


def _invariance(x: np.ndarray, k: int, s: int, shifter: Any = _shift_right, pooled: bool = True,
                zeros: bool = False, count: bool = False) -> float:
    """The fraction of responses unchanged by the shift, over those non-zero before or after it (the reference
    when the options are left alone; the options give the results of known mistakes)."""
    a, b = x, shifter(x, s)
    if pooled:
        a, b = np.asarray(nn.MaxPool2D(k).forward(a)), np.asarray(nn.MaxPool2D(k).forward(b))
    same = a == b
    if not zeros:
        same = same[(a != 0) | (b != 0)]
    return float(np.sum(same)) if count else float(np.mean(same))


_INVARIANCE_FORMULA = ("a = pool(x), b = pool(x shifted right by `shift` pixels, zeros entering on the left); "
                       "return mean(a == b) over the positions where a != 0 or b != 0")


def plan_translation_invariance(reference: str = "translation_invariance", *, shapes: Any = ((4, 2, 8, 8),),
                                shifts: Any = (1,), pool: int = 2, seed: int = 0) -> Plan:
    """``f(x, pool, shift)``: of the pooled responses that are non-zero before or after x moves ``shift`` pixels
    to the right, the fraction that stay exactly the same.

    x: seeded sparse non-negative feature maps (as after a ReLU) of every shape; ``pool`` in the kernel is
    the grader's max-pooling with a ``pool``×``pool`` window.
    """
    rng = np.random.default_rng(seed)
    planned, expected = [], []
    for shape in shapes:
        shape = tuple(int(v) for v in shape)
        x = np.round(rng.random(shape) * (rng.random(shape) < 0.3), 4)
        for s in shifts:
            s = int(s)
            planned.append({"x": x, "shift": s, "pool": int(pool)})
            expected.append({
                "value": _invariance(x, pool, s),
                "causes": [
                    [_invariance(x, pool, s, lambda a, t: np.roll(a, t, axis=-1)),
                     "np.roll wraps the last columns around to the left edge; shift with zeros coming in instead"],
                    [_invariance(x, pool, s, lambda a, t: _shift_right(a[..., ::-1], t)[..., ::-1]),
                     "the maps were shifted to the LEFT; shift them to the right (x_shift[..., s:] = x[..., :-s])"],
                    [_invariance(x, pool, s, lambda a, t: np.swapaxes(_shift_right(np.swapaxes(a, -1, -2), t),
                                                                      -1, -2)),
                     "the maps were shifted down (the height axis); shift along the width, the last axis"],
                    [_invariance(x, pool, s, pooled=False),
                     "this is measured on the INPUT pixels; compare pool(x) with pool(shifted x)"],
                    [_invariance(x, pool, s, zeros=True),
                     "the zeros that stay zero were counted too; count only the positions where a != 0 or b != 0"],
                    [_invariance(x, pool, s, count=True),
                     "you returned a count; return the fraction (the mean of the boolean array)"],
                ]})
    return Plan("translation_invariance", reference, {"cases": planned}, {"cases": expected})


def judge_translation_invariance(plan: Plan, record: dict) -> Verdict:
    name, bad = _start(plan, record, "your function")
    if bad:
        return bad
    values = []
    for ci, case, exp, got in _cases(plan, record):
        where = (f"{name}(x of shape {case['x'].shape}, pool=max-pooling {case['pool']}×{case['pool']}, "
                 f"shift={case['shift']}) [case {ci + 1} of {len(plan.inputs['cases'])}]")
        if bad := _ran_badly(name, where, ci, got, "x in place; shift a copy"):
            return bad
        v = got["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.ndarray)) or np.size(v) != 1:
            return Verdict(False, message=f"{where}: expected one number (a fraction in [0, 1]), got {v!r:.80}")
        v = float(np.asarray(v))
        if not np.isclose(v, exp["value"], rtol=0, atol=1e-12):
            why = next((w for value, w in exp["causes"] if np.isclose(v, value, rtol=0, atol=1e-12)), None)
            return Verdict(False, message=(
                f"{where}: expected the fraction {exp['value']:.6f} of non-zero pooled responses unchanged, got {v:.6f}"
                + (f"\n  likely cause: {why}" if why else "")
                + f"\n  formula: {_INVARIANCE_FORMULA}"))
        values.append(v)
    return Verdict(True, summary=(f"{name}: matches on {len(values)} case(s); e.g. {values[0]:.1%} of the non-zero "
                                  "max-pooled responses survive the shift"))


# --------------------------------------------------------------------------- networks (LeNet, residual block)


#: A layer config is [its name, *its arguments]; the arguments' names ("" where positional) in messages.
_CONFIG_ARGS = {"Conv2D": ("", "", "kernel_size", "stride", "padding"), "Affine": ("", ""),
                "MaxPool2D": ("kernel_size", "stride", "padding")}


def _describe_config(c: list) -> str:
    names = _CONFIG_ARGS.get(c[0], ())
    return f"{c[0]}({', '.join(f'{n}={v}' if n else str(v) for n, v in zip(names, c[1:], strict=False))})"


def _dl_layer(c: list) -> Any:
    """dlcore's layer for a config (float64 parameters)."""
    return getattr(nn, c[0])(*c[1:], **({"dtype": "float64"} if c[0] in ("Conv2D", "Affine") else {}))


def lenet_configs(c1: int = 16, c2: int = 32, n_classes: int = 10) -> list:
    """The chapter's LeNet for 8×8 digits: conv3×3 (pad 1) → ReLU → max-pool 2 → conv3×3 (pad 1) → ReLU →
    max-pool 2 → flatten → affine (c2 · 2 · 2 inputs)."""
    return [["Conv2D", 1, c1, 3, 1, 1], ["ReLU"], ["MaxPool2D", 2, 2, 0], ["Conv2D", c1, c2, 3, 1, 1], ["ReLU"],
            ["MaxPool2D", 2, 2, 0], ["Flatten"], ["Affine", c2 * 4, n_classes]]


def _seeded_params(configs: list, rng: np.random.Generator, scale: float = 0.5) -> list:
    """Standard normal parameters times ``scale``, one dict per layer (the shapes of dlcore's layers)."""
    return [{k: rng.standard_normal(np.shape(v)) * scale for k, v in _dl_layer(c).params.items()} for c in configs]


def _dl_net(configs: list, params: list) -> list:
    layers = [_dl_layer(c) for c in configs]
    for layer, p in zip(layers, params, strict=True):
        for k, v in p.items():
            layer.params[k] = v.copy()
    return layers


def _net_plan(kind: str, reference: str, configs: list, params: list, shapes: Any, seed: int, rng: Any,
              run: Any, extra_inputs: dict) -> Plan:
    planned, expected = [], []
    for shape in shapes:
        x = rng.standard_normal(tuple(int(v) for v in shape))
        dy = rng.standard_normal(run(x, None)[0].shape)
        planned.append({"x": x, "dy": dy})
        expected.append(dict(zip(("y", "dx", "grads", "causes", "numeric"), run(x, dy), strict=True)))
    inputs = {"configs": configs, "params": params, "cases": planned, **extra_inputs}
    return Plan(kind, reference, inputs, {"cases": expected}, {"seed": seed})


def plan_cnn_network(reference: str = "LeNet", *, kwargs: Any = None, shapes: Any = ((3, 1, 8, 8),),
                     seed: int = 0) -> Plan:
    """The student's LeNet class built with ``layers=`` the grader's layers; compared with dlcore's layers.

    ``kwargs`` (c1, c2, n_classes) go to the constructor; the plan loads seeded parameters into every
    layer and compares the scores, dL/dx and every layer's gradients.
    """
    kwargs = dict(kwargs or {})
    rng = np.random.default_rng(seed)
    configs = lenet_configs(kwargs.get("c1", 16), kwargs.get("c2", 32), kwargs.get("n_classes", 10))
    params = _seeded_params(configs, rng)

    def run(x: np.ndarray, dy: Any) -> tuple:
        with _quiet():
            net = nn.Sequential(_dl_net(configs, params))
            y = np.asarray(net.forward(x.copy()))
            if dy is None:
                return y, None, None, None, None
            dx = np.asarray(net.backward(dy.copy()))
            return y, dx, [{k: np.asarray(v) for k, v in layer.grads.items()} for layer in net], {}, None

    return _net_plan("cnn_network", reference, configs, params, shapes, seed, rng, run,
                     {"kwargs": {**kwargs, "rng": 0}})


#: Per network kind: the student's default name, hints for a wrong forward and a wrong backward, a layer's name.
_NETWORKS = {
    "cnn_network": {"name": "LeNet", "forward": "forward calls every layer's forward in order, each on the previous "
                                                "output",
                    "backward": "backward calls the layers' backward in REVERSE order, each on the gradient the later "
                                "layer returned, and returns dL/dx of the first layer",
                    "layer": lambda i: f"layers[{i}]"},
    "residual_block": {"name": "ResidualBlock", "forward": "y = ReLU(conv2(ReLU(conv1(x))) + x)",
                       "backward": "dz = dy · [F(x) + x > 0]; the branch: conv1.backward(relu1.backward("
                                   "conv2.backward(dz))); return that + dz (the identity shortcut)",
                       "layer": lambda i: ("conv1", "conv2")[i]},
}


def judge_cnn_network(plan: Plan, record: dict) -> Verdict:
    """LeNet or the residual block (:data:`_NETWORKS` by the plan's kind): the layers the student built with the
    grader's ones, then forward, dL/dx and every layer's gradients against dlcore's (and numerical) gradients."""
    hints = _NETWORKS[plan.kind]
    name = record.get("origin", {}).get("name", hints["name"])
    if why := delegation(record.get("origin", {}), plan.reference):
        return Verdict(False, message=why)
    if record.get("build_error"):
        return Verdict(False, message=f"{name}: building it with the grader's layers (layers=...) failed with "
                                      f"{record['build_error']}")
    if record.get("layers_error"):
        return Verdict(False, message=f"{name}: {record['layers_error']}")
    want, got = plan.inputs["configs"], record.get("configs", [])
    if got != want:
        pairs = [["(nothing)" if c is None else _describe_config(c) for c in pair] for pair in zip_longest(want, got)]
        lines = [f"  {'  ' if w == g else '✗ '}layer {i}: expected {w}, got {g}" for i, (w, g) in enumerate(pairs)]
        return Verdict(False, message=f"{name}: the layers are not the ones asked for:\n" + "\n".join(lines))
    if len(record.get("cases", [])) != len(plan.inputs["cases"]):
        return Verdict(False, message=incomplete(name, len(record.get("cases", [])), len(plan.inputs["cases"])))
    worst = 0.0
    for ci, case, exp, got in _cases(plan, record):
        where = f"{name} on x of shape {case['x'].shape} (seed {plan.info.get('seed')}, case {ci + 1})"
        if got["warnings"]:
            return Verdict(False, message=f"{where}: NumPy warned inside your code ({'; '.join(got['warnings'][:3])})")
        for part, label, want in (("forward", "the output of forward", exp["y"]),
                                  ("backward", "dL/dx returned by backward", exp["dx"])):
            if got[f"{part}_error"]:
                return Verdict(False, message=f"{where}: {part} raised {got[f'{part}_error']}")
            if problem := compare(label, got[part], want, rtol=1e-8, candidates=(exp["causes"] or {}).get(part, [])):
                return Verdict(False, message=f"{where}:\n- {problem}\n  hint: {hints[part]}")
        for li, (g, e) in enumerate(zip(got["grads"], exp["grads"], strict=True)):
            for key, ev in e.items():
                if problem := compare(f"{hints['layer'](li)}.grads[{key!r}]", g.get(key), ev, rtol=1e-8):
                    return Verdict(False, message=f"{where}:\n- {problem}\n  hint: {hints['backward']}")
                worst = max(worst, _rel_error(np.asarray(g[key], dtype="float64"), ev)[0])
        for label, (key_layer, key, numeric) in (exp.get("numeric") or {}).items():
            g = got["grads"][key_layer][key] if key_layer >= 0 else got["backward"]
            err, idx = _rel_error(np.asarray(g, dtype="float64"), numeric)
            if err > 1e-6:
                return Verdict(False, message=f"{where}: {label} disagrees with the numerical gradient (relative "
                                              f"error {err:.1e} at {idx})")
            worst = max(worst, err)
    return Verdict(True, summary=(f"{name}: architecture, forward, dL/dx and every layer's gradients match dlcore's "
                                  f"layers on {len(plan.inputs['cases'])} input(s) (worst rel. error {worst:.1e})"
                                  + (" and the numerical gradient" if plan.expected['cases'][0].get("numeric")
                                     else "")))


judge_residual_block = judge_cnn_network


def plan_residual_block(reference: str = "ResidualBlock", *, args: Any = (3,), shapes: Any = ((2, 3, 5, 5),),
                        seed: int = 0) -> Plan:
    """y = ReLU(conv2(ReLU(conv1(x))) + x), built with the grader's layers; against dlcore's ResidualBlock
    (batch_norm=False) and the numerical gradient of its forward."""
    c = int(args[0])
    rng = np.random.default_rng(seed)
    configs = [["Conv2D", c, c, 3, 1, 1], ["Conv2D", c, c, 3, 1, 1]]
    params = _seeded_params(configs, rng, scale=0.3)

    def block() -> Any:
        b = nn.ResidualBlock(c, batch_norm=False, dtype="float64")
        for name, p in zip(("conv1", "conv2"), params, strict=True):
            for k, v in p.items():
                b.params[f"{name}.{k}"] = v.copy()
        return b

    def run(x: np.ndarray, dy: Any) -> tuple:
        with _quiet():
            b = block()
            y = np.asarray(b.forward(x.copy()))
            if dy is None:
                return y, None, None, None, None
            dx = np.asarray(b.backward(dy.copy()))
            grads = [{k: np.asarray(b.grads[f"{n}.{k}"]) for k in ("W", "b")} for n in ("conv1", "conv2")]
            # known mistakes, from the reference's own pieces
            conv1, conv2 = _dl_net(configs, params)
            h = np.asarray(conv1.forward(x.copy()))
            f = np.asarray(conv2.forward(np.maximum(h, 0)))
            z = f + x
            dz = np.where(z > 0, dy, 0.0)
            dx_branch = np.asarray(conv1.backward(np.where(h > 0, np.asarray(conv2.backward(dz)), 0.0)))
            causes = {"forward": [[z, "the final ReLU is missing: y = ReLU(F(x) + x)"],
                                  [np.maximum(f, 0) + x, "the shortcut is added after the last ReLU; add x before "
                                                         "it: y = ReLU(F(x) + x)"],
                                  [np.maximum(f, 0), "the shortcut x is missing: y = ReLU(F(x) + x)"]],
                      "backward": [[dx_branch, "the shortcut's gradient is missing: the identity passes dz on "
                                               "unchanged, dL/dx = (branch's backward of dz) + dz"],
                                   [dx_branch + dy, "the shortcut gets dy, but it must get dz = dy · [F(x) + x > 0] "
                                                    "(the gradient after the final ReLU)"]]}

            block_num, x_num = block(), x.copy()

            def loss_x() -> float:
                return float(np.sum(np.asarray(block_num.forward(x_num)) * dy))

            numeric = {"dL/dx": [-1, "", numerical_gradient(loss_x, x_num)],
                       "dL/dW of conv1": [0, "W", numerical_gradient(loss_x, block_num.conv1.params["W"])]}
            return y, dx, grads, causes, numeric

    return _net_plan("residual_block", reference, configs, params, shapes, seed, rng, run,
                     {"args": [c], "kwargs": {"rng": 0}, "parts": ["conv1", "conv2"], "reference": "ResidualBlock"})


# --------------------------------------------------------------------------- the closing experiment


def plan_cnn_training(reference: str = "train", *, data_seed: int = 1, epochs: int = 15, seed: int = 0,
                      minimum: float = 0.98) -> Plan:
    """The student's ``train(net, x, t, epochs=, seed=, progress=False)`` on the grader's LeNet and digits.

    The plan draws the digits split ``data_seed`` (8×8 images, float64) and He-initialised parameters; the
    kernel gets x_train, t_train and x_test (not t_test) and returns the predicted test labels.
    """
    d = load_digits(seed=data_seed, flatten=False, dtype="float64")
    configs = lenet_configs()
    rng = np.random.default_rng(seed + 1000)

    def he(conv: bool, key: str, shape: tuple) -> np.ndarray:
        """W ~ N(0, 2 / fan_in) (fan_in: the inputs of one output unit), b = 0."""
        fan_in = int(np.prod(shape[1:])) if conv else int(shape[0])
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape) if key == "W" else np.zeros(shape)

    params = [{k: he(c[0] == "Conv2D", k, np.shape(v)) for k, v in _dl_layer(c).params.items()} for c in configs]
    inputs = {"configs": configs, "params": params, "x_train": np.asarray(d.x_train),
              "t_train": np.asarray(d.t_train), "x_test": np.asarray(d.x_test),
              "kwargs": {"epochs": int(epochs), "seed": int(seed), "progress": False}}
    return Plan("cnn_training", reference, inputs, {"t_test": np.asarray(d.t_test), "minimum": float(minimum)},
                {"data_seed": data_seed})


def judge_cnn_training(plan: Plan, record: dict) -> Verdict:
    name = record.get("origin", {}).get("name", "train")
    epochs = plan.inputs["kwargs"]["epochs"]
    where = (f"{name}(net, x_train, t_train, epochs={epochs}) on the grader's LeNet and the digits split "
             f"seed={plan.info.get('data_seed')} ({len(plan.inputs['t_train'])} training images)")
    if record.get("error"):
        return Verdict(False, message=f"{where} raised {record['error']}")
    if record.get("warnings"):
        return Verdict(False, message=f"{where}: NumPy warned during training ({'; '.join(record['warnings'][:3])}); "
                                      "the loss must stay finite (check the learning rate)")
    hist = record.get("history")
    if not isinstance(hist, list) or len(hist) != epochs or not all(isinstance(v, (int, float)) for v in hist):
        return Verdict(False, message=f"{where}: expected a list of {epochs} numbers (the mean training loss of each "
                                      f"epoch), got {str(hist)[:120]}")
    if not np.all(np.isfinite(hist)) or not hist[-1] < 0.5 * hist[0]:
        return Verdict(False, message=f"{where}: the training loss went from {hist[0]:.4g} to {hist[-1]:.4g}; "
                                      "expected it at least to halve (does every batch update the parameters "
                                      "in place?)")
    pred, t = record.get("predicted"), plan.expected["t_test"]
    if not isinstance(pred, np.ndarray) or pred.shape != t.shape:
        return Verdict(False, message=f"{where}: the trained network's scores on the test images could not be read")
    acc = float(np.mean(pred == t))
    if acc < plan.expected["minimum"]:
        return Verdict(False, message=(
            f"{where}: test accuracy {acc:.2%} is below the required {plan.expected['minimum']:.0%} (the final "
            f"training loss was {hist[-1]:.4g}). Check that every epoch visits the samples in a new random order, "
            "that backward starts from the loss's gradient, and that every parameter is updated"))
    return Verdict(True, summary=(f"{name}: the grader's LeNet trained by your loop reaches {acc:.2%} test accuracy "
                                  f"(≥ {plan.expected['minimum']:.0%}); loss {hist[0]:.3f} → {hist[-1]:.4f}"))
