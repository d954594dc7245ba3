"""ResidualBlock: gradients (identity and projection shortcuts, with and without batch norm) against central
differences in float64 on every backend, the forward formula from its parts, parameter views, and errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore import backend
from dlcore.gradcheck import assert_layer_gradients
from dlcore.nn.container import Sequential
from dlcore.nn.residual import ResidualBlock

CASES = [
    # (in, out, stride, batch_norm, x shape)
    (2, None, 1, True, (2, 2, 4, 3)),       # identity shortcut
    (2, 3, 2, True, (2, 2, 5, 4)),          # projection: more channels and stride 2, odd size
    (2, 2, 2, False, (1, 2, 4, 4)),         # projection because of the stride alone; no BN; batch of 1
    (2, None, 1, False, (1, 2, 3, 3)),      # identity, no BN
]
IDS = ["identity-bn", "projection-bn", "projection-stride", "identity-plain"]


def _arr(a, xp):
    return backend.to_device(np.asarray(a), xp)


def _pre_activations(block, x):
    """Every ReLU input of the block, to keep the gradient check away from the kink at 0."""
    block.forward(x)
    return [block.relu1.x, block.relu_out.x]


@pytest.mark.parametrize(("cin", "cout", "stride", "bn", "shape"), CASES, ids=IDS)
def test_residual_gradients(xp, cin, cout, stride, bn, shape):
    x_np = np.random.default_rng(0).normal(size=shape)
    block = ResidualBlock(cin, cout, stride, batch_norm=bn, rng=1).astype("float64")
    assert min(float(np.min(np.abs(a))) for a in _pre_activations(block, x_np)) > 1e-4
    assert_layer_gradients(block.to(xp), _arr(x_np, xp), rtol=1e-6)


@pytest.mark.parametrize(("cin", "cout", "stride", "bn", "shape"), CASES, ids=IDS)
def test_residual_forward_is_relu_of_branch_plus_shortcut(cin, cout, stride, bn, shape):
    x = np.random.default_rng(2).normal(size=shape)
    block = ResidualBlock(cin, cout, stride, batch_norm=bn, rng=3, dtype="float64")
    y = block.forward(x)
    h = block.conv1.forward(x)
    h = block.bn1.forward(h) if bn else h
    h = block.conv2.forward(np.maximum(h, 0))
    h = block.bn2.forward(h) if bn else h
    if block.projection:
        s = block.shortcut.forward(x)
        s = block.shortcut_bn.forward(s) if bn else s
    else:
        s = x
    np.testing.assert_allclose(y, np.maximum(h + s, 0), rtol=1e-12)
    out_c = cin if cout is None else cout
    assert y.shape == (shape[0], out_c, (shape[2] - 1) // stride + 1, (shape[3] - 1) // stride + 1)


def test_residual_shortcut_choice_and_parameter_names():
    identity = ResidualBlock(4, rng=0)
    assert not identity.projection and identity.shortcut is None
    assert set(identity.params) == {"conv1.W", "bn1.gamma", "bn1.beta", "conv2.W", "bn2.gamma", "bn2.beta"}
    projection = ResidualBlock(4, 8, stride=2, rng=0)
    assert projection.projection and projection.params["shortcut.W"].shape == (8, 4, 1, 1)
    assert "shortcut_bn.gamma" in projection.params
    plain = ResidualBlock(4, batch_norm=False, rng=0)
    assert set(plain.params) == {"conv1.W", "conv1.b", "conv2.W", "conv2.b"}
    assert set(identity.buffers()) == {"bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"}


def test_residual_params_write_through_and_train_in_a_sequential():
    block = ResidualBlock(2, 3, stride=2, rng=0, dtype="float64")
    w = np.zeros((3, 2, 3, 3))
    block.params["conv1.W"] = w
    assert block.conv1.params["W"] is w
    with pytest.raises(ValueError, match="ResidualBlock.params: 'conv1.W' has shape"):
        block.params["conv1.W"] = np.zeros((1, 1))
    model = Sequential(block)
    x = np.random.default_rng(4).normal(size=(2, 2, 4, 4))
    y_train = model.forward(x)
    model.backward(np.ones_like(y_train))
    assert set(model.grads) == {f"0.{k}" for k in block.params}
    y_eval = model.predict(x)                         # running statistics: a different output
    assert not np.allclose(y_train, y_eval)
    model.grads = {}
    assert len(block.grads) == 0


def test_residual_moves_and_casts_with_its_sublayers(xp):
    block = ResidualBlock(2, 3, stride=2, rng=0).astype("float64").to(xp)
    assert backend.dtype_name(block.conv1.params["W"].dtype) == "float64"
    assert backend.dtype_name(block.shortcut_bn.running_var.dtype) == "float64"
    y = block.forward(_arr(np.ones((1, 2, 4, 4)), xp))
    assert backend.namespace(y) is backend.namespace(block.params["conv2.W"])


def test_residual_errors():
    with pytest.raises(ValueError, match="ResidualBlock: expected x with 3 channels"):
        ResidualBlock(3).forward(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"ResidualBlock: expected a 4-D batch of images"):
        ResidualBlock(3).forward(np.zeros((1, 3, 4), np.float32))
    with pytest.raises(ValueError, match="ResidualBlock: expected stride to be a positive int"):
        ResidualBlock(3, stride=0)
    with pytest.raises(KeyError, match="ResidualBlock.params: no entry 'conv9.W'"):
        ResidualBlock(3).params["conv9.W"]
