"""LSTM: gradients (cell and sequence, with initial h0 and c0), the NumPy fast path, and PyTorch's LSTM."""

from __future__ import annotations

import numpy as np
import pytest
from recurrent_adapters import WithState

from dlcore import backend
from dlcore.gradcheck import assert_layer_gradients
from dlcore.nn.base import Layer
from dlcore.nn.lstm import GATE_ORDER, LSTM, LSTMCell

D, H = 3, 4


def _arr(rng, shape, xp):
    return backend.to_device(rng.standard_normal(shape), xp)


class CellAsLayer(Layer):
    """forward(x, h, c) -> [h_next, c_next] concatenated, so one scalar checks both outputs."""

    def __init__(self, cell: LSTMCell) -> None:
        self.cell = cell

    @property
    def params(self):
        return self.cell.params

    @property
    def grads(self):
        return self.cell.grads

    def forward(self, x, h, c):
        xp = backend.namespace(x)
        return xp.concat(list(self.cell.forward(x, h, c)), axis=1)

    def backward(self, dy):
        return self.cell.backward(dy[:, :H], dy[:, H:])


@pytest.mark.parametrize("n,t", [(1, 1), (3, 4), (1, 4)])
def test_lstm_gradients_inputs_states_and_params(xp, rng, n, t):
    layer = LSTM(D, H, rng=1, forget_bias=0.5).astype("float64").to(xp)
    args = _arr(rng, (n, t, D), xp), _arr(rng, (n, H), xp), _arr(rng, (n, H), xp)
    report = assert_layer_gradients(WithState(layer), *args)
    assert set(report.errors) == {"dx1", "dx2", "dx3", "Wx", "Wh", "b"}


def test_lstm_gradients_generic_loop_on_numpy(rng):
    layer = LSTM(D, H, rng=2, dtype="float64")
    layer.fast = False
    assert_layer_gradients(WithState(layer), _arr(rng, (3, 4, D), np), _arr(rng, (3, H), np), _arr(rng, (3, H), np))
    assert layer.cache["fast"] is False


@pytest.mark.parametrize("n", [1, 3])
def test_lstm_cell_gradients(xp, rng, n):
    cell = LSTMCell(D, H, rng=3).astype("float64").to(xp)
    report = assert_layer_gradients(CellAsLayer(cell), _arr(rng, (n, D), xp), _arr(rng, (n, H), xp),
                                    _arr(rng, (n, H), xp))
    assert set(report.errors) == {"dx1", "dx2", "dx3", "Wx", "Wh", "b"}


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 2e-5)])
def test_fast_path_equals_generic_loop(rng, dtype, tol):
    fast, slow = LSTM(5, 6, rng=4, forget_bias=1.0, dtype=dtype), LSTM(5, 6, rng=4, forget_bias=1.0, dtype=dtype)
    slow.fast = False
    xs = rng.standard_normal((3, 7, 5)).astype(dtype)
    h0, c0 = rng.standard_normal((3, 6)).astype(dtype), rng.standard_normal((3, 6)).astype(dtype)
    dhs = rng.standard_normal((3, 7, 6)).astype(dtype)
    np.testing.assert_allclose(fast.forward(xs, h0, c0), slow.forward(xs, h0, c0), rtol=tol, atol=tol)
    np.testing.assert_allclose(fast.backward(dhs), slow.backward(dhs), rtol=tol, atol=tol)
    for k in fast.params:
        np.testing.assert_allclose(fast.grads[k], slow.grads[k], rtol=tol, atol=tol)
        assert fast.grads[k].dtype == np.dtype(dtype)
    np.testing.assert_allclose(fast.dh0, slow.dh0, rtol=tol, atol=tol)
    np.testing.assert_allclose(fast.dc0, slow.dc0, rtol=tol, atol=tol)
    np.testing.assert_allclose(fast.last_state["c"], slow.last_state["c"], rtol=tol, atol=tol)


def test_sequence_equals_repeated_cell_and_gate_order(rng):
    """Gate blocks are (f, g, i, o): a large f-bias keeps c; the sequence layer is the cell T times."""
    assert GATE_ORDER == ("f", "g", "i", "o")
    seq, cell = LSTM(D, H, rng=5, dtype="float64"), LSTMCell(D, H, rng=5, dtype="float64")
    xs, h, c = rng.standard_normal((2, 3, D)), rng.standard_normal((2, H)), rng.standard_normal((2, H))
    hs = seq.forward(xs, h, c)
    for t in range(3):
        h, c = cell.forward(xs[:, t], h, c)
        np.testing.assert_allclose(hs[:, t], h, rtol=1e-12)
    # f ≈ 1 and i ≈ 0 (large f bias, very negative i bias): the cell state is carried unchanged
    b = np.zeros(4 * H)
    b[:H], b[2 * H:3 * H] = 50.0, -50.0
    cell.params["b"] = b
    c0 = rng.standard_normal((2, H))
    _, c1 = cell.forward(rng.standard_normal((2, D)), rng.standard_normal((2, H)), c0)
    np.testing.assert_allclose(c1, c0, atol=1e-12)


def test_lstm_step_matches_the_equations(rng):
    """Written out independently: blocks f, g, i, o; c' = f c + g i; h' = o tanh(c')."""
    cell = LSTMCell(D, H, rng=6, dtype="float64")
    cell.params["b"] = rng.standard_normal(4 * H)
    x, h, c = rng.standard_normal((2, D)), rng.standard_normal((2, H)), rng.standard_normal((2, H))
    a = x @ cell.params["Wx"] + h @ cell.params["Wh"] + cell.params["b"]

    def sig(z):
        return 1.0 / (1.0 + np.exp(-z))

    f, g, i, o = sig(a[:, :H]), np.tanh(a[:, H:2 * H]), sig(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
    h_next, c_next = cell.forward(x, h, c)
    np.testing.assert_allclose(c_next, f * c + g * i, rtol=1e-12)
    np.testing.assert_allclose(h_next, o * np.tanh(f * c + g * i), rtol=1e-12)
    seq = LSTM(D, H, dtype="float64")
    seq.params = dict(cell.params)
    np.testing.assert_allclose(seq.forward(x[:, None, :], h, c)[:, 0], h_next, rtol=1e-12)


def test_forget_bias_initialises_the_f_block():
    b = LSTM(D, H, forget_bias=1.0, rng=0).params["b"]
    np.testing.assert_array_equal(b, np.r_[np.ones(H), np.zeros(3 * H)].astype("float32"))


def test_extreme_preactivations_stay_finite():
    layer = LSTM(1, 2, rng=0, dtype="float32")
    xs = np.full((1, 3, 1), 1e4, dtype="float32")
    hs = layer.forward(xs)
    assert np.all(np.isfinite(hs)) and np.all(np.abs(hs) <= 1.0)
    assert np.all(np.isfinite(layer.backward(np.ones_like(hs))))


def test_bad_initial_cell_state():
    layer = LSTM(D, H)
    xs = np.zeros((2, 3, D), dtype="float32")
    with pytest.raises(ValueError, match="c0"):
        layer.forward(xs, None, np.zeros((2, H + 1), dtype="float32"))
    with pytest.raises(TypeError, match="c0"):
        layer.forward(xs, None, np.zeros((2, H), dtype="float64"))
    with pytest.raises(ValueError, match="c_prev"):
        LSTMCell(D, H).forward(xs[:, 0], np.zeros((2, H), "float32"), np.zeros((3, H), "float32"))


@pytest.mark.torch
def test_lstm_matches_torch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional oracle; install torch to cross-check the LSTM")
    n, t, d, h = 3, 6, 5, 4
    ref = torch.nn.LSTM(d, h, batch_first=True).double()
    ours = LSTM(d, h, dtype="float64")
    w_ih, w_hh = ref.weight_ih_l0.detach().numpy(), ref.weight_hh_l0.detach().numpy()
    bias = (ref.bias_ih_l0 + ref.bias_hh_l0).detach().numpy()
    # torch stacks the gate blocks as (i, f, g, o) along rows; ours are (f, g, i, o) along columns
    blocks = {name: slice(k * h, (k + 1) * h) for k, name in enumerate("ifgo")}
    order = [blocks[g] for g in GATE_ORDER]
    ours.params["Wx"] = np.concatenate([w_ih[s] for s in order]).T.copy()
    ours.params["Wh"] = np.concatenate([w_hh[s] for s in order]).T.copy()
    ours.params["b"] = np.concatenate([bias[s] for s in order])
    xs, h0, c0 = rng.standard_normal((n, t, d)), rng.standard_normal((n, h)), rng.standard_normal((n, h))
    dhs = rng.standard_normal((n, t, h))
    x_t = torch.tensor(xs, requires_grad=True)
    out, (h_n, c_n) = ref(x_t, (torch.tensor(h0[None]), torch.tensor(c0[None])))
    out.backward(torch.tensor(dhs))
    hs = ours.forward(xs, h0, c0)
    dxs = ours.backward(dhs)
    np.testing.assert_allclose(hs, out.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.last_state["c"], c_n.detach().numpy()[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dxs, x_t.grad.numpy(), rtol=1e-9, atol=1e-12)
    dwx = np.concatenate([ref.weight_ih_l0.grad.numpy()[s] for s in order]).T
    np.testing.assert_allclose(ours.grads["Wx"], dwx, rtol=1e-9, atol=1e-12)
