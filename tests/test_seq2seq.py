"""Encoder–decoder: gradients through both LSTMs (and attention), greedy generation, a small learning task."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from dlcore import backend
from dlcore.gradcheck import assert_layer_gradients, check_directional
from dlcore.nn.seq2seq import Decoder, Seq2Seq
from dlcore.nn.time_layers import TimeSoftmaxCrossEntropy
from dlcore.optim import Adam

try:  # a dev dependency; small models gain nothing from BLAS threads and lose a lot on a busy machine
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


def _one_blas_thread():
    return contextlib.nullcontext() if threadpool_limits is None else threadpool_limits(1, user_api="blas")


V, D, H = 6, 3, 4


def _model(attention, xp, seed=0):
    model = Seq2Seq(V, D, H, attention=attention, rng=seed, dtype="float64")
    # embeddings of unit scale (the default 0.01 makes every gradient tiny and the check uninformative)
    for side in ("encoder", "decoder"):
        model.params[f"{side}.embed.W"] = np.random.default_rng(seed).standard_normal((V, D))
    if attention == "additive":  # likewise, so that dL/dW_dec is well above the round-off of L
        for name in ("W_enc", "W_dec", "v"):
            shape = model.params[f"decoder.attention.{name}"].shape
            model.params[f"decoder.attention.{name}"] = 2.0 * np.random.default_rng(seed).standard_normal(shape)
    return model.to(xp)


@pytest.mark.parametrize("attention", [None, "dot", "additive"])
def test_seq2seq_gradients_numpy(rng, attention):
    model = _model(attention, np)
    xs, dec_in = rng.integers(0, V, (2, 4)), rng.integers(0, V, (2, 3))
    # eps 1e-4: the attention weights' gradients are ~1e-6 (a softmax gradient sums to zero over the
    # encoder steps), so the round-off of L / eps at eps = 1e-5 would dominate them
    report = assert_layer_gradients(model, xs, dec_in, eps=1e-4)
    assert "encoder.lstm.Wh" in report.errors and "decoder.affine.W" in report.errors
    if attention == "additive":
        assert "decoder.attention.v" in report.errors


@pytest.mark.parametrize("attention", [None, "additive"])
def test_seq2seq_directional_derivative(xp, rng, attention):
    model = _model(attention, xp, seed=1)
    xs = backend.to_device(rng.integers(0, V, (2, 4)), xp)
    dec_in = backend.to_device(rng.integers(0, V, (1, 3)).repeat(2, axis=0), xp)
    assert check_directional(model, xs, dec_in).error < 1e-7


@pytest.mark.parametrize("attention", [None, "dot"])
def test_generate_is_greedy_teacher_forcing_on_its_own_output(rng, attention):
    model = _model(attention, np, seed=2)
    xs = rng.integers(0, V, (3, 5))
    ids = model.generate(xs, start_id=0, length=4)
    assert ids.shape == (3, 4) and ids.dtype == np.int64
    dec_in = np.concatenate([np.zeros((3, 1), dtype=np.int64), ids[:, :-1]], axis=1)
    scores = model.forward(xs, dec_in)
    np.testing.assert_array_equal(scores.argmax(-1), ids)
    if attention:
        assert model.attention_weights.shape == (3, 4, 5)
        np.testing.assert_allclose(model.attention_weights.sum(-1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(model.decoder.attention.weights, model.attention_weights, rtol=1e-10)


def test_params_are_write_through_and_named():
    model = Seq2Seq(V, D, H, attention="additive", rng=0)
    keys = list(model.params)
    assert keys[0] == "encoder.embed.W" and "decoder.attention.W_enc" in keys and keys[-1] == "decoder.affine.b"
    new = np.zeros((H, 4 * H), dtype="float32")
    model.params["decoder.lstm.Wh"] = new
    assert model.decoder.lstm.params["Wh"] is new
    model.grads = {}
    assert len(model.grads) == 0


def test_bad_input():
    model = Seq2Seq(V, D, H, rng=0)
    with pytest.raises(ValueError, match=r"ids in \[0, 5\]"):
        model.forward(np.array([[0, 6]]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="one batch size"):
        model.forward(np.zeros((2, 3), dtype=np.int64), np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="empty sequence"):
        model.forward(np.zeros((2, 0), dtype=np.int64), np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="hs_enc"):
        Decoder(V, D, H, attention="dot").forward(np.zeros((2, 3), dtype=np.int64), np.zeros((2, H), "float32"))
    with pytest.raises(ValueError, match="attention"):
        Seq2Seq(V, D, H, attention="luong")


@pytest.mark.slow
def test_attention_seq2seq_learns_to_reverse():
    """Reverse sequences of 5 symbols; with dot attention ≥ 95% of held-out sequences come out exactly right."""
    gen = np.random.default_rng(0)
    start, t = V - 1, 5

    def batch(n):
        xs = gen.integers(0, V - 1, (n, t))
        return xs, np.concatenate([np.full((n, 1), start), xs[:, ::-1]], axis=1)

    model, loss, opt = Seq2Seq(V, 8, 32, attention="dot", rng=0), TimeSoftmaxCrossEntropy(), Adam(lr=0.01)
    x_test, t_test = batch(200)
    acc = 0.0
    with _one_blas_thread():
        for step in range(1, 401):
            xs, ts = batch(64)
            loss.forward(model.forward(xs, ts[:, :-1]), ts[:, 1:])
            model.backward(loss.backward())
            opt.update(model.params, model.grads)
            if step % 100 == 0:
                acc = float(np.mean(np.all(model.generate(x_test, start, t) == t_test[:, 1:], axis=1)))
                if acc >= 0.95:
                    break
    assert acc >= 0.95, f"exact-match accuracy {acc:.3f} after {step} steps"
