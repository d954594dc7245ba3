"""Simple RNN (cell and whole sequences), the recurrent-layer contract shared with LSTM/GRU, Bidirectional."""

from __future__ import annotations

import numpy as np
import pytest
from recurrent_adapters import WithState

from dlcore import backend
from dlcore.gradcheck import assert_layer_gradients
from dlcore.nn.gru import GRU
from dlcore.nn.lstm import LSTM
from dlcore.nn.recurrent import Bidirectional
from dlcore.nn.rnn import RNN, RNNCell

SHAPES = [(1, 1), (3, 4), (1, 4)]      # (batch N, time steps T)
D, H = 3, 4


def _arr(rng, shape, xp, scale=1.0):
    return backend.to_device(scale * rng.standard_normal(shape), xp)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("n,t", SHAPES)
def test_rnn_gradients_inputs_state_and_params(xp, rng, n, t):
    layer = RNN(D, H, rng=1).astype("float64").to(xp)
    report = assert_layer_gradients(WithState(layer), _arr(rng, (n, t, D), xp), _arr(rng, (n, H), xp))
    assert set(report.errors) == {"dx1", "dx2", "Wx", "Wh", "b"}


def test_rnn_gradients_from_zero_state(xp, rng):
    layer = RNN(D, H, rng=2).astype("float64").to(xp)
    assert_layer_gradients(layer, _arr(rng, (2, 5, D), xp))


@pytest.mark.parametrize("n", [1, 3])
def test_rnn_cell_gradients(xp, rng, n):
    cell = RNNCell(D, H, rng=3).astype("float64").to(xp)
    report = assert_layer_gradients(cell, _arr(rng, (n, D), xp), _arr(rng, (n, H), xp))
    assert set(report.errors) == {"dx1", "dx2", "Wx", "Wh", "b"}


def test_rnn_equals_repeated_cell(rng):
    """The sequence layer is the cell applied T times with shared weights (values and summed gradients)."""
    seq, cell = RNN(D, H, rng=4, dtype="float64"), RNNCell(D, H, rng=4, dtype="float64")
    xs, h0, dhs = rng.standard_normal((2, 3, D)), rng.standard_normal((2, H)), rng.standard_normal((2, 3, H))
    hs = seq.forward(xs, h0)
    seq.backward(dhs)
    h, caches = h0, []
    for t in range(3):
        h = cell.forward(xs[:, t], h)
        np.testing.assert_allclose(hs[:, t], h, rtol=1e-12)
        caches.append(cell.cache)
    dh, total = np.zeros((2, H)), {k: 0.0 for k in cell.params}
    for t in reversed(range(3)):
        cell.cache = caches[t]
        _, dh = cell.backward(dhs[:, t] + dh)
        total = {k: total[k] + cell.grads[k] for k in total}
    for k in total:
        np.testing.assert_allclose(seq.grads[k], total[k], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(seq.dh0, dh, rtol=1e-10, atol=1e-12)


def test_bidirectional_gradients(xp, rng):
    layer = Bidirectional(RNN(D, H, rng=5), LSTM(D, 2, rng=6)).astype("float64").to(xp)
    report = assert_layer_gradients(layer, _arr(rng, (2, 3, D), xp))
    assert "bwd.Wh" in report.errors and "fwd.b" in report.errors


def test_bidirectional_halves_read_the_sequence_both_ways(rng):
    fwd, bwd = RNN(D, H, rng=7, dtype="float64"), GRU(D, 2, rng=8, dtype="float64")
    xs = rng.standard_normal((2, 5, D))
    out = Bidirectional(fwd, bwd).forward(xs)
    assert out.shape == (2, 5, H + 2)
    ref_f = RNN(D, H, rng=7, dtype="float64").forward(xs)
    ref_b = GRU(D, 2, rng=8, dtype="float64").forward(xs[:, ::-1])[:, ::-1]
    np.testing.assert_allclose(out[:, :, :H], ref_f, rtol=1e-12)
    np.testing.assert_allclose(out[:, :, H:], ref_b, rtol=1e-12)


def test_bidirectional_params_write_through():
    bi = Bidirectional(RNN(D, H, rng=0), RNN(D, H, rng=1))
    new = np.ones((D, H), dtype="float32")
    bi.params["bwd.Wx"] = new
    assert bi.bwd.params["Wx"] is new
    assert len(bi.params) == 6
    with pytest.raises(ValueError, match="distinct"):
        Bidirectional(bi.fwd, bi.fwd)
    with pytest.raises(ValueError, match="stateful"):
        Bidirectional(RNN(D, H), RNN(D, H, stateful=True))


# --------------------------------------------------------------------------- state handling


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_stateful_two_halves_equal_one_pass(xp, rng, cls):
    """Truncated BPTT: forward(x[:, :T]) then forward(x[:, T:]) gives the states of forward(x) in one call."""
    whole = cls(D, H, rng=9).astype("float64").to(xp)
    halves = cls(D, H, stateful=True, rng=9).astype("float64").to(xp)
    xs = _arr(rng, (3, 6, D), xp)
    full = backend.to_numpy(whole.forward(xs))
    first = backend.to_numpy(halves.forward(xs[:, :3, :]))
    second = backend.to_numpy(halves.forward(xs[:, 3:, :]))
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), full, rtol=1e-12, atol=1e-14)
    # gradients stop at the boundary: backward of the second chunk only, dh0 is reported
    halves.backward(backend.to_device(np.ones((3, 3, H)), xp))
    assert tuple(halves.dh0.shape) == (3, H)
    halves.reset_state()
    np.testing.assert_allclose(backend.to_numpy(halves.forward(xs[:, :3, :])), first, rtol=1e-12)


def test_stateless_layer_starts_from_zero_each_call(rng):
    layer = LSTM(D, H, rng=0, dtype="float64")
    xs = rng.standard_normal((2, 3, D))
    np.testing.assert_array_equal(layer.forward(xs), layer.forward(xs))
    assert set(layer.last_state) == {"h", "c"}


def test_stateful_batch_change_needs_reset(rng):
    layer = RNN(D, H, stateful=True, rng=0, dtype="float64")
    layer.forward(rng.standard_normal((2, 3, D)))
    with pytest.raises(ValueError, match="reset_state"):
        layer.forward(rng.standard_normal((4, 3, D)))
    layer.reset_state()
    assert layer.forward(rng.standard_normal((4, 3, D))).shape == (4, 3, H)


def test_carried_state_moves_with_the_layer(rng):
    layer = LSTM(D, H, stateful=True, rng=0)
    layer.forward(rng.standard_normal((2, 3, D)).astype("float32"))
    layer.astype("float64")
    assert set(layer.buffers()) == {"h", "c"}
    assert all(backend.dtype_name(v.dtype) == "float64" for v in layer.buffers().values())
    assert layer.forward(rng.standard_normal((2, 1, D))).dtype == np.float64


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_bad_input_gets_clear_errors(cls):
    layer = cls(D, H, rng=0)
    with pytest.raises(ValueError, match="length 0"):
        layer.forward(np.zeros((2, 0, D), dtype="float32"))
    with pytest.raises(ValueError, match=f"{D} features"):
        layer.forward(np.zeros((2, 3, D + 1), dtype="float32"))
    with pytest.raises(ValueError, match="batch of sequences"):
        layer.forward(np.zeros((3, D), dtype="float32"))
    with pytest.raises(TypeError, match="dtype"):
        layer.forward(np.zeros((2, 3, D), dtype="float64"))
    with pytest.raises(ValueError, match="h0"):
        layer.forward(np.zeros((2, 3, D), dtype="float32"), np.zeros((3, H), dtype="float32"))
    with pytest.raises(RuntimeError, match="before forward"):
        cls(D, H).backward(np.zeros((2, 3, H), dtype="float32"))
    layer.forward(np.zeros((2, 3, D), dtype="float32"))
    with pytest.raises(ValueError, match="dy"):
        layer.backward(np.zeros((2, 4, H), dtype="float32"))
    with pytest.raises(ValueError, match="hidden_size"):
        cls(D, 0)


def test_cell_bad_input():
    cell = RNNCell(D, H)
    with pytest.raises(ValueError, match="h_prev"):
        cell.forward(np.zeros((2, D), dtype="float32"), np.zeros((2, H + 1), dtype="float32"))
    with pytest.raises(ValueError, match="last dimension"):
        cell.forward(np.zeros((2, D + 1), dtype="float32"), np.zeros((2, H), dtype="float32"))
