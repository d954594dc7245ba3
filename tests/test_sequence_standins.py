"""Chapter 6's closing experiments train with the grader's correct earlier layers (grader/kernel/records/
_sequence_standins.py), so that a mistake in an earlier exercise costs that exercise's points only.

- each stand-in IS the solution notebook's class: same constructor draws, the same forward and backward (to
  round-off) on random float64 inputs, so a correct notebook trains as it would with its own layers;
- each stand-in's gradients agree with central differences (float64, relative error < 1e-6);
- the closing record replaces the notebook's own classes only (never a library's, such as dlcore's Embedding in
  the attention notebook), says which it replaced, and restores the notebook's names afterwards, also when the
  training raises; ``earlier=()`` trains the student's own layers;
- on the real Reber experiment, a notebook whose LSTM is wrong keeps the experiment's points.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from dlcore.gradcheck import numerical_gradient, relative_error
from grader import kinds
from grader.kernel.records import _sequence_standins as standins

ROOT = Path(__file__).resolve().parents[1]
_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$", re.MULTILINE)


def notebook_namespace(stem: str, **changes: tuple[str, str]) -> dict:
    """The solution notebook's setup and definitions (classes, functions, imports; no top-level training) as
    ``__main__`` defines them in a kernel, with ``grade_id=(old, new)`` text replacements in answer cells."""
    import nbformat

    nb = nbformat.read(str(ROOT / "solutions" / "06_rnn" / f"{stem}.ipynb"), as_version=4)
    ns: dict = {"__name__": "__main__"}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not (meta.get("solution") or str(meta.get("grade_id", "")).endswith("setup")):
            continue
        code = "\n".join(line for line in _MARKER.sub("", cell.source).splitlines() if not line.startswith("%"))
        if meta.get("grade_id") in changes:
            old, new = changes[meta["grade_id"]]
            assert old in code, f"{meta['grade_id']}: {old!r} not in the solution"
            code = code.replace(old, new)
        tree = ast.parse(code)
        tree.body = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef,
                                                             ast.ClassDef))]
        exec(compile(tree, f"<{stem}:{meta['grade_id']}>", "exec"), ns)  # noqa: S102 - the course's own notebook
    return ns


RNN_LSTM, ATTENTION = notebook_namespace("rnn_lstm"), notebook_namespace("attention_transformer")

#: stand-in name -> (notebook namespace, constructor arguments, inputs of forward, forward's keyword arguments)
CASES = {
    "Embedding": (RNN_LSTM, (7, 4), {"scale": 0.3}, lambda r: (r.integers(0, 7, (3, 5)),), {}),
    "LSTM": (RNN_LSTM, (3, 4), {"forget_bias": 1.0}, lambda r: (r.standard_normal((2, 5, 3)),), {}),
    "TimeSoftmaxCrossEntropy": (RNN_LSTM, (), {}, lambda r: (r.standard_normal((3, 4, 6)),
                                                              np.where(r.random((3, 4)) < 0.3, -1,
                                                                       r.integers(0, 6, (3, 4)))), {}),
    "AdditiveAttention": (ATTENTION, (4, 3, 5), {}, lambda r: (r.standard_normal((2, 6, 4)),
                                                                r.standard_normal((2, 3, 3)),
                                                                r.random((2, 6)) < 0.8), {}),
    "PositionalEncoding": (ATTENTION, (6, 20), {}, lambda r: (r.standard_normal((2, 5, 6)),), {}),
    "TransformerEncoderLayer": (ATTENTION, (8, 2, 16), {}, lambda r: (r.standard_normal((2, 5, 8)),),
                                {"causal": True}),
}


def _build(cls, args, kwargs, seed=0):
    rng_kw = {} if cls.__name__ in ("TimeSoftmaxCrossEntropy", "PositionalEncoding") else {"rng": seed}
    return cls(*args, **kwargs, **rng_kw)


def _run(layer, name, inputs, fwd_kw, dy_rng):
    """Forward, then backward of a random upstream gradient: (output, backward's result, grads)."""
    out = layer.forward(*inputs, **fwd_kw)
    if name == "TimeSoftmaxCrossEntropy":
        back = layer.backward(1.0)
    else:
        dy = dy_rng.standard_normal(np.shape(out))
        back = layer.backward(dy)
    return out, back, {k: np.array(v) for k, v in layer.grads.items()}


def test_the_table_covers_every_stand_in():
    assert set(CASES) == set(standins.STANDINS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_stand_in_is_the_solutions_class(name):
    """Same parameters from the same seed, the same outputs, input gradients and parameter gradients."""
    ns, args, kwargs, make_inputs, fwd_kw = CASES[name]
    ours, theirs = _build(standins.STANDINS[name], args, kwargs), _build(ns[name], args, kwargs)
    assert set(ours.params) == set(theirs.params)
    for k in ours.params:
        np.testing.assert_array_equal(ours.params[k], theirs.params[k], err_msg=f"{name}.params[{k!r}]")
    inputs = make_inputs(np.random.default_rng(1))
    got = _run(ours, name, inputs, fwd_kw, np.random.default_rng(2))
    want = _run(theirs, name, inputs, fwd_kw, np.random.default_rng(2))
    for what, g, w in (("forward", got[0], want[0]), ("backward", got[1], want[1])):
        for a, b in zip(g if isinstance(g, tuple) else (g,), w if isinstance(w, tuple) else (w,), strict=True):
            if b is None:
                assert a is None, f"{name} {what}"
            else:
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{name} {what}")
    assert set(got[2]) == set(want[2])
    for k in got[2]:
        np.testing.assert_allclose(got[2][k], want[2][k], rtol=1e-10, atol=1e-12, err_msg=f"{name} grads[{k!r}]")


@pytest.mark.parametrize("name", sorted(set(CASES) - {"PositionalEncoding"}))
def test_stand_in_gradients_match_central_differences(name):
    """Every parameter gradient (and dL/dx where the input is real) against central differences of the loss
    L = Σ dy ⊙ forward(x) (the loss itself for TimeSoftmaxCrossEntropy): relative error < 1e-6 in float64."""
    ns, args, kwargs, make_inputs, fwd_kw = CASES[name]
    layer = _build(standins.STANDINS[name], args, kwargs)
    inputs = make_inputs(np.random.default_rng(3))
    out = layer.forward(*inputs, **fwd_kw)
    dy = None if name == "TimeSoftmaxCrossEntropy" else np.random.default_rng(4).standard_normal(np.shape(out))

    def loss() -> float:
        y = layer.forward(*inputs, **fwd_kw)
        return float(y) if dy is None else float(np.sum(dy * y))

    loss()
    back = layer.backward(1.0) if dy is None else layer.backward(dy)
    grads = {k: np.array(v) for k, v in layer.grads.items()}
    for k, p in layer.params.items():
        numeric = numerical_gradient(loss, p)
        if np.abs(numeric).max() < 1e-8:    # e.g. attention's key bias: softmax ignores a shift of every score
            assert np.abs(grads[k]).max() < 1e-8, f"{name} d/d{k} should be zero"
            continue
        err, where = relative_error(grads[k], numeric)
        assert err < 1e-6, f"{name} d/d{k}: relative error {err:.2e} at {where}"
    dx = back[0] if isinstance(back, tuple) else back
    if dx is not None and inputs[0].dtype.kind == "f":
        err, where = relative_error(dx, numerical_gradient(loss, inputs[0]))
        assert err < 1e-6, f"{name} dx: relative error {err:.2e} at {where}"


def _record(kind, student, **options):
    k = kinds.find(kind)
    plan = k.plan(**options)
    return k, plan, k.record(student, plan.inputs)


def test_only_the_notebooks_own_classes_are_replaced_and_restored():
    """In the attention notebook Embedding, LSTM and the loss are dlcore's: only AdditiveAttention is replaced; the
    names are the notebook's again afterwards, also when training raises."""
    ns = {"__name__": "__main__"}
    exec("from dlcore.nn import Embedding\n"  # noqa: S102 - a notebook in miniature
         "class AdditiveAttention:\n    pass\n"
         "def train(q, a, **options):\n"
         "    seen.append((Embedding.__module__, AdditiveAttention.__module__))\n"
         "    raise RuntimeError('stop')\n", ns)
    ns["seen"] = []
    own_embedding, own_attention = ns["Embedding"], ns["AdditiveAttention"]
    k, plan, rec = _record("seq2seq", ns["train"], reference="AdditiveAttention", n_train=8, n_test=4,
                           earlier=("Embedding", "AdditiveAttention"))
    assert ns["seen"] == [("dlcore.nn.embedding", standins.__name__)]
    assert rec["standins"] == ["AdditiveAttention"] and "training raised RuntimeError" in rec["error"]
    assert ns["Embedding"] is own_embedding and ns["AdditiveAttention"] is own_attention
    v = k.judge(plan, rec)
    assert not v.ok and "with the grader's AdditiveAttention" in v.message
    _, _, rec = _record("seq2seq", ns["train"], reference="AdditiveAttention", n_train=8, n_test=4, earlier=())
    assert rec["standins"] == [] and ns["seen"][-1] == ("dlcore.nn.embedding", "__main__")


def test_a_wrong_lstm_keeps_the_reber_experiments_points():
    """The rnn_lstm solution with LSTM's backward wrong (dc not carried back through the forget gate) passes the
    Reber check with the default stand-ins, and fails it with ``earlier=()`` (its own LSTM trains)."""
    ns = notebook_namespace("rnn_lstm", lstm=("            dc = dc * f\n", "            dc = dc * 0.0\n"))
    options = {"reference": "LSTM", "n_train": 1000, "n_test": 300, "seed": 1, "options": {"progress": False},
               "minimum": 0.99}
    k, plan, rec = _record("next_symbol", ns["train_next_symbol"], **options)
    v = k.judge(plan, rec)
    assert v.ok and "with the grader's Embedding, LSTM, TimeSoftmaxCrossEntropy" in v.summary, v.message
    k, plan, rec = _record("next_symbol", ns["train_next_symbol"], **options, earlier=())
    v = k.judge(plan, rec)
    assert not v.ok and "below the required 99%" in v.message, v.summary
