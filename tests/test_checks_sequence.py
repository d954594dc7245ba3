"""Chapter-6 check kinds (grader/trusted/plans/sequence.py, grader/kernel/records/sequence.py), without a kernel.

Each kind accepts dlcore's reference (and a plain NumPy solution) over several seeds and rejects each prepared
mistake with a message that names the cause.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlcore import nn
from dlcore.optim import clip_grad_norm
from grader import kinds


def verdict(kind, student, reference, **options):
    k = kinds.find(kind)
    assert k is not None, kind
    plan = k.plan(reference, **options)
    return k.judge(plan, k.record(student, plan.inputs))


def sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


# --------------------------------------------------------------------------- student-like implementations


class RNNCell:
    def __init__(self, d, h, bug=None):
        self.params = {"Wx": np.zeros((d, h)), "Wh": np.zeros((h, h)), "b": np.zeros(h)}
        self.grads, self.bug = {}, bug

    def forward(self, x, h):
        self.cache = (x, h, np.tanh(x @ self.params["Wx"] + h @ self.params["Wh"] + self.params["b"]))
        return self.cache[2]

    def backward(self, dh):
        x, h_prev, h = self.cache
        da = dh if self.bug == "no_tanh" else dh * (1 - h * h)
        self.grads = {"Wx": x.T @ da, "Wh": h_prev.T @ da, "b": da.sum(0)}
        return da @ self.params["Wx"].T, da @ self.params["Wh"].T


class RNN:
    def __init__(self, d, h, bug=None):
        self.params = {"Wx": np.zeros((d, h)), "Wh": np.zeros((h, h)), "b": np.zeros(h)}
        self.grads, self.bug = {}, bug

    def forward(self, xs):
        p, h, hs = self.params, np.zeros((xs.shape[0], self.params["Wh"].shape[0])), []
        for t in range(xs.shape[1]):
            h = np.tanh(xs[:, t] @ p["Wx"] + h @ p["Wh"] + p["b"])
            hs.append(h)
        self.xs, self.hs = xs, np.stack(hs, 1)
        return self.hs

    def backward(self, dhs):
        p, xs, hs = self.params, self.xs, self.hs
        g = {k: np.zeros_like(v) for k, v in p.items()}
        dh, dxs = np.zeros_like(hs[:, 0]), np.zeros(xs.shape)
        for t in reversed(range(xs.shape[1])):
            h_prev = hs[:, t - 1] if t else np.zeros_like(dh)
            da = (dhs[:, t] + (0 if self.bug == "no_carry" else dh)) * (1 - hs[:, t] ** 2)
            if self.bug == "overwrite":
                g = {"Wx": xs[:, t].T @ da, "Wh": h_prev.T @ da, "b": da.sum(0)}
            else:
                g["Wx"] += xs[:, t].T @ da
                g["Wh"] += h_prev.T @ da
                g["b"] += da.sum(0)
            dxs[:, t], dh = da @ p["Wx"].T, da @ p["Wh"].T
        self.grads = g
        return dxs


class LSTMCell:
    def __init__(self, d, h, order="fgio"):
        self.params = {"Wx": np.zeros((d, 4 * h)), "Wh": np.zeros((h, 4 * h)), "b": np.zeros(4 * h)}
        self.grads, self.order = {}, order

    def forward(self, x, h_prev, c_prev):
        p, hd = self.params, h_prev.shape[1]
        a = x @ p["Wx"] + h_prev @ p["Wh"] + p["b"]
        blocks = {gate: a[:, k * hd:(k + 1) * hd] for k, gate in enumerate(self.order)}
        f, g, i, o = sigmoid(blocks["f"]), np.tanh(blocks["g"]), sigmoid(blocks["i"]), sigmoid(blocks["o"])
        c = f * c_prev + g * i
        return o * np.tanh(c), c

    def backward(self, dh, dc):
        raise NotImplementedError


class Embedding:
    def __init__(self, v, d, bug=None):
        self.params, self.grads, self.bug = {"W": np.zeros((v, d))}, {}, bug

    def forward(self, ids):
        self.ids = ids
        return self.params["W"][ids]

    def backward(self, dy):
        dw = np.zeros_like(self.params["W"])
        if self.bug == "overwrite":
            dw[self.ids.reshape(-1)] = dy.reshape(-1, dw.shape[1])
        else:
            np.add.at(dw, self.ids.reshape(-1), dy.reshape(-1, dw.shape[1]))
        self.grads["W"] = dw


class Loss(nn.TimeSoftmaxCrossEntropy):
    """dlcore's loss, divided by N·T instead of the number of real positions (a student's mistake)."""

    def forward(self, scores, ts):
        value = super().forward(scores, ts)
        self.scale = self.count / (ts.shape[0] * ts.shape[1])
        return value * self.scale

    def backward(self, dout=1.0):
        return super().backward(dout) * self.scale


def clip_ok(grads, c):
    return clip_grad_norm(grads, c)


def clip_per_tensor(grads, c):
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
    for k in grads:
        grads[k] = grads[k] * (c / max(float(np.linalg.norm(grads[k])), c))
    return norm


def clip_not_in_place(grads, c):
    new, norm = {}, math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
    for k in grads:
        new[k] = grads[k] * (c / max(norm, c))
    return norm


def attention(q, k, v, causal=False, scale=True, mask=True):
    s = q @ np.swapaxes(k, -1, -2) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    if causal and mask:
        s = np.where(np.tril(np.ones(s.shape[-2:], dtype=bool)), s, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    a = e / e.sum(-1, keepdims=True)
    return a @ v, a


class AttentionNoMask(nn.AdditiveAttention):
    def forward(self, hs_enc, h_dec, mask=None):
        return super().forward(hs_enc, h_dec)


class MHANoScale(nn.MultiHeadAttention):
    def forward(self, x, context=None, *, causal=False, mask=None):
        d = math.sqrt(self.embed_dim // self.num_heads)
        wq, bq = self.params["Wq"], self.params["bq"]
        self.params["Wq"], self.params["bq"] = wq * d, bq * d
        try:
            return super().forward(x, causal=causal)
        finally:
            self.params["Wq"], self.params["bq"] = wq, bq


class _View(dict):
    def __init__(self, parts, attr):
        super().__init__({f"{n}.{k}": v for n, part in parts.items() for k, v in getattr(part, attr).items()})
        self.parts, self.attr = parts, attr

    def __setitem__(self, key, value):
        name, _, inner = key.partition(".")
        getattr(self.parts[name], self.attr)[inner] = value


class EncoderLayer:
    """The notebook's wiring (post-norm), or a prepared mistake."""

    def __init__(self, e, heads, ffn, bug=None):
        self.parts = {"attn": nn.MultiHeadAttention(e, heads, dtype="float64"), "norm1": nn.LayerNorm(e),
                      "ffn1": nn.TimeAffine(e, ffn, dtype="float64"), "ffn2": nn.TimeAffine(ffn, e, dtype="float64"),
                      "norm2": nn.LayerNorm(e)}
        self.bug = bug

    params = property(lambda self: _View(self.parts, "params"))
    grads = property(lambda self: _View(self.parts, "grads"))

    def forward(self, x):
        p = self.parts
        if self.bug == "prenorm":
            z = x + p["attn"].forward(p["norm1"].forward(x))
            return z + p["ffn2"].forward(np.maximum(p["ffn1"].forward(p["norm2"].forward(z)), 0))
        z = p["norm1"].forward(x + p["attn"].forward(x))
        self.u = p["ffn1"].forward(z)
        f = p["ffn2"].forward(np.maximum(self.u, 0))
        return p["norm2"].forward(f if self.bug == "no_residual" else z + f)

    def backward(self, dy):
        p = self.parts
        d = p["norm2"].backward(dy)
        dz = d + p["ffn1"].backward(np.where(self.u > 0, p["ffn2"].backward(d), 0.0))
        d = p["norm1"].backward(dz)
        return d + p["attn"].backward(d)


class BidirectionalNoFlip:
    def __init__(self, f, b):
        self.f, self.b, self.params, self.grads = f, b, {}, {}

    def forward(self, xs):
        return np.concatenate([self.f.forward(xs), self.b.forward(xs[:, ::-1])], -1)

    def backward(self, dhs):
        hf = self.f.hidden_size
        return self.f.backward(dhs[..., :hf]) + self.b.backward(dhs[..., hf:])[:, ::-1]


# --------------------------------------------------------------------------- acceptance


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_references_and_plain_solutions_pass(seed):
    cases = [
        ("rnn_step", nn.RNNCell, "RNNCell", {"args": (3, 4), "batches": (3, 1)}),
        ("rnn_step", RNNCell, "RNNCell", {"args": (2, 5), "batches": (2,)}),
        ("rnn_step", nn.LSTMCell, "LSTMCell", {"args": (3, 4), "batches": (2,)}),
        ("bptt", nn.RNN, "RNN", {"args": (3, 4), "shapes": ((2, 5, 3), (1, 1, 3))}),
        ("bptt", RNN, "RNN", {"args": (3, 4), "shapes": ((2, 5, 3),)}),
        ("bptt", nn.LSTM, "LSTM", {"args": (2, 3), "shapes": ((2, 4, 2),)}),
        ("bidirectional", nn.Bidirectional, "Bidirectional", {"sizes": (3, 4, 2), "shapes": ((2, 5, 3),)}),
        ("embedding", nn.Embedding, "Embedding", {"args": (5, 3), "shapes": ((2, 6), (4,))}),
        ("embedding", Embedding, "Embedding", {"args": (4, 2), "shapes": ((3, 3),)}),
        ("time_loss", nn.TimeSoftmaxCrossEntropy, "TimeSoftmaxCrossEntropy", {"shapes": ((3, 5, 4), (1, 2, 3))}),
        ("attention", nn.AdditiveAttention, "AdditiveAttention", {"args": (4, 3, 5), "shapes": ((2, 6, 4), (2, 3))}),
        ("attention", nn.AdditiveAttention, "AdditiveAttention",
         {"args": (4, 3, 5), "shapes": ((2, 6, 4), (2, 2, 3)), "mask": True}),
        ("sdpa", attention, "scaled_dot_product_attention", {"causal": True}),
        ("sdpa", attention, "scaled_dot_product_attention", {"shapes": ((2, 3, 4), (2, 5, 4), (2, 5, 1))}),
        ("mha", nn.MultiHeadAttention, "MultiHeadAttention", {"args": (6, 3), "causal": True, "shapes": ((2, 4, 6),)}),
        ("encoder_layer", EncoderLayer, "TransformerEncoderLayer", {"args": (8, 2, 16)}),
        ("encoder_layer", EncoderLayer, "TransformerEncoderLayer",
         {"args": (6, 3, 4), "shapes": ((1, 1, 6), (3, 4, 6))}),
        ("clip", clip_ok, "clip_grad_norm", {"max_norms": (0.5, 1e6)}),
    ]
    for kind, student, ref, options in cases:
        v = verdict(kind, student, ref, seed=seed, **options)
        assert v.ok, f"{kind} / {ref}: {v.message}"
        assert v.summary.startswith(getattr(student, "__name__", ""))


# --------------------------------------------------------------------------- prepared mistakes


def _rejects(kind, student, reference, phrase, **options):
    v = verdict(kind, student, reference, **options)
    assert not v.ok, f"{kind}: {student} passed"
    assert phrase in v.message, v.message
    return v.message


@pytest.mark.parametrize("kind, student, reference, phrases, options", [
    ("rnn_step", lambda d, h: RNNCell(d, h, bug="no_tanh"), "RNNCell", ["tanh derivative"], {"args": (3, 4)}),
    ("rnn_step", lambda d, h: LSTMCell(d, h, "ifgo"), "LSTMCell", ["PyTorch's order", "h_next"], {"args": (3, 4)}),
    ("rnn_step", lambda d, h: LSTMCell(d, h, "fgoi"), "LSTMCell", ["f, g, o, i", "h_next"], {"args": (3, 4)}),
    ("bptt", lambda d, h: RNN(d, h, bug="overwrite"), "RNN", ["accumulated", "first time step", "dWx"],
     {"args": (3, 4)}),
    ("bptt", lambda d, h: RNN(d, h, bug="no_carry"), "RNN", ["does not flow back through time"], {"args": (3, 4)}),
    ("clip", clip_per_tensor, "clip_grad_norm", ["clipped by its own norm"], {}),
    ("clip", clip_not_in_place, "clip_grad_norm", ["not changed in place"], {}),
    ("clip", lambda g, c: clip_grad_norm(g, c) and None, "clip_grad_norm", ["forget a `return`"], {}),
    ("embedding", lambda v, d: Embedding(v, d, bug="overwrite"), "Embedding", ["np.add.at"], {"args": (5, 3)}),
    ("time_loss", Loss, "TimeSoftmaxCrossEntropy", ["divided by N·T"], {}),
    ("attention", AttentionNoMask, "AdditiveAttention", ["mask is not applied"],
     {"args": (4, 3, 5), "shapes": ((2, 6, 4), (2, 3)), "mask": True}),
    ("sdpa", lambda q, k, v, causal=False: attention(q, k, v, causal, scale=False), "scaled_dot_product_attention",
     ["1/√d_k"], {}),
    ("sdpa", lambda q, k, v, causal=False: attention(q, k, v, causal, mask=False), "scaled_dot_product_attention",
     ["causal mask is not applied"], {"causal": True}),
    ("mha", MHANoScale, "MultiHeadAttention", ["1/√d_k"], {"args": (8, 2)}),
    ("bidirectional", BidirectionalNoFlip, "Bidirectional", ["not flipped back"], {}),
])
def test_prepared_mistakes_are_named(kind, student, reference, phrases, options):
    msg = _rejects(kind, student, reference, phrases[0], **options)
    for phrase in phrases[1:]:
        assert phrase in msg, msg


def test_encoder_layer_wiring_is_graded_with_stand_ins():
    """Stand-ins replace attention and layer norms: a wrong MHA of the student's cannot cost this exercise,
    a miswired layer is named, and a layer without self.parts is told why it cannot be checked."""

    class WrongAttention(nn.MultiHeadAttention):
        def forward(self, x, context=None, *, causal=False, mask=None):
            return 2 * super().forward(x)

    def with_wrong_attention(e, h, f):
        layer = EncoderLayer(e, h, f)
        layer.parts["attn"] = WrongAttention(e, h, dtype="float64")
        return layer

    v = verdict("encoder_layer", with_wrong_attention, "TransformerEncoderLayer", args=(8, 2, 16))
    assert v.ok and "stand-ins" in v.summary, v.message
    _rejects("encoder_layer", lambda e, h, f: EncoderLayer(e, h, f, bug="prenorm"), "TransformerEncoderLayer",
             "pre-norm", args=(8, 2, 16))
    _rejects("encoder_layer", lambda e, h, f: EncoderLayer(e, h, f, bug="no_residual"), "TransformerEncoderLayer",
             "residual connection around the feed-forward", args=(8, 2, 16))
    _rejects("encoder_layer", nn.TransformerEncoderLayer, "TransformerEncoderLayer", "self.parts", args=(8, 2, 16))


def test_build_errors_and_warnings_are_failures():
    def broken(*args):
        raise NotImplementedError

    msg = verdict("bptt", broken, "RNN", args=(3, 4)).message
    assert "not implemented yet" in msg

    class Overflow(nn.RNNCell):
        def forward(self, x, h):
            np.exp(np.array([1000.0]))
            return super().forward(x, h)

    assert "warning" in verdict("rnn_step", Overflow, "RNNCell", args=(3, 4)).message


def test_closing_experiment_judges_on_plan_data():
    """The kernel sees the test inputs only; the judge scores predictions against the plan's own targets."""
    k = kinds.find("next_symbol")
    plan = k.plan("LSTM", n_train=20, n_test=50, seed=3)
    assert "legal" not in plan.inputs and "ts" not in plan.inputs
    assert set(plan.inputs) == {"train", "options", "test_x", "earlier"}
    first_legal = plan.expected["legal"].argmax(-1)                    # a perfect next-symbol predictor
    assert k.judge(plan, {"name": "f", "error": None, "warnings": [], "scores": first_legal}).ok
    bad = np.zeros_like(first_legal)
    v = k.judge(plan, {"name": "f", "error": None, "warnings": [], "scores": bad})
    assert not v.ok and "below the required 99%" in v.message
    assert "raised" in k.judge(plan, {"name": "f", "error": "training raised ValueError", "warnings": [],
                                      "scores": None}).message
    s = kinds.find("sequence_training")
    plan = s.plan("TransformerEncoderLayer", n_train=10, n_test=20, seed=1)
    assert s.judge(plan, {"name": "f", "error": None, "warnings": [], "scores": plan.expected["ts"]}).ok
    assert not s.judge(plan, {"name": "f", "error": None, "warnings": [], "scores": plan.inputs["test_x"]}).ok
    q = kinds.find("seq2seq")
    plan = q.plan("AdditiveAttention", n_train=10, n_test=20, seed=1)
    assert q.judge(plan, {"name": "f", "error": None, "warnings": [], "scores": plan.expected["answers"]}).ok
    assert not q.judge(plan, {"name": "f", "error": None, "warnings": [],
                              "scores": np.zeros_like(plan.expected["answers"])}).ok
