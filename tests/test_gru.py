"""GRU: gradients of the cell and of whole sequences (with h0), and the equations written out."""

from __future__ import annotations

import numpy as np
import pytest
from recurrent_adapters import WithState

from dlcore import backend
from dlcore.gradcheck import assert_layer_gradients
from dlcore.nn.gru import GRU, GRUCell

D, H = 3, 4


def _arr(rng, shape, xp):
    return backend.to_device(rng.standard_normal(shape), xp)


@pytest.mark.parametrize("n,t", [(1, 1), (3, 4), (1, 4)])
def test_gru_gradients_inputs_state_and_params(xp, rng, n, t):
    layer = GRU(D, H, rng=1).astype("float64").to(xp)
    report = assert_layer_gradients(WithState(layer), _arr(rng, (n, t, D), xp), _arr(rng, (n, H), xp))
    assert set(report.errors) == {"dx1", "dx2", "Wx", "Wh", "b"}


@pytest.mark.parametrize("n", [1, 3])
def test_gru_cell_gradients(xp, rng, n):
    cell = GRUCell(D, H, rng=2).astype("float64").to(xp)
    assert_layer_gradients(cell, _arr(rng, (n, D), xp), _arr(rng, (n, H), xp))


def test_gru_step_matches_the_equations(rng):
    """z, r, h̃ blocks in that order; h_next = (1 - z) h + z h̃ with the reset gate applied before Wh_h."""
    cell = GRUCell(D, H, rng=3, dtype="float64")
    cell.params["b"] = rng.standard_normal(3 * H)
    x, h = rng.standard_normal((2, D)), rng.standard_normal((2, H))
    wx, wh, b = cell.params["Wx"], cell.params["Wh"], cell.params["b"]

    def sig(a):
        return 1.0 / (1.0 + np.exp(-a))

    z = sig(x @ wx[:, :H] + h @ wh[:, :H] + b[:H])
    r = sig(x @ wx[:, H:2 * H] + h @ wh[:, H:2 * H] + b[H:2 * H])
    h_tilde = np.tanh(x @ wx[:, 2 * H:] + (r * h) @ wh[:, 2 * H:] + b[2 * H:])
    np.testing.assert_allclose(cell.forward(x, h), (1 - z) * h + z * h_tilde, rtol=1e-12)


def test_gru_sequence_equals_repeated_cell(rng):
    seq, cell = GRU(D, H, rng=4, dtype="float64"), GRUCell(D, H, rng=4, dtype="float64")
    xs, h = rng.standard_normal((2, 5, D)), np.zeros((2, H))
    hs = seq.forward(xs)
    for t in range(5):
        h = cell.forward(xs[:, t], h)
        np.testing.assert_allclose(hs[:, t], h, rtol=1e-12)
