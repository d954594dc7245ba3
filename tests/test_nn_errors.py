"""Bad input raises TypeError/ValueError whose message names the layer, what it expected and what it got."""

from __future__ import annotations

import array_api_strict
import numpy as np
import pytest

from dlcore import backend, nn


def _arr(a, xp):
    return backend.to_device(np.asarray(a), xp)


def _f64(shape, xp, seed=0):
    return _arr(np.random.default_rng(seed).normal(size=shape), xp)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("layer,shape,message", [
    (lambda: nn.Affine(4, 3), (3, 5), r"Affine: expected x with last dimension 4, got an array of shape \(3, 5\)"),
    (lambda: nn.Affine(4, 3), (3, 4, 1), r"Affine: expected x to be 2-D, got an array of shape \(3, 4, 1\)"),
    (lambda: nn.Maxout(4, 3, 2), (3, 2), r"Maxout: expected x with last dimension 4, got an array of shape \(3, 2\)"),
    (lambda: nn.BatchNorm(3), (5, 4), r"BatchNorm: expected x with 3 channels on axis 1, got .*\(5, 4\)"),
    (lambda: nn.BatchNorm(3), (5, 2, 4, 4), r"BatchNorm: expected x with 3 channels on axis 1, got .*\(5, 2, 4, 4\)"),
    (lambda: nn.BatchNorm(3), (5, 3, 4), r"BatchNorm: expected x to be 2-D or 4-D, got .*\(5, 3, 4\)"),
    (lambda: nn.PReLU(3), (5, 4), r"PReLU: expected x with 3 channels on axis 1, got .*\(5, 4\)"),
    (lambda: nn.PReLU(3), (3,), r"PReLU: expected x to be 2-D or .*, got an array of shape \(3,\)"),
    (lambda: nn.Flatten(), (3,), r"Flatten: expected x to be 2-D or .*, got an array of shape \(3,\)"),
], ids=["affine-dim", "affine-ndim", "maxout", "bn-2d", "bn-4d", "bn-3d", "prelu-channels", "prelu-1d", "flatten"])
def test_wrong_input_shape(xp, layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer().astype("float64").to(xp).forward(_f64(shape, xp))


def test_wrong_shape_inside_sequential_names_the_layer(xp):
    model = nn.Sequential(nn.Affine(4, 3), nn.ReLU(), nn.Affine(2, 1)).astype("float64").to(xp)
    with pytest.raises(ValueError, match=r"Affine: expected x with last dimension 2, got an array of shape \(5, 3\)"):
        model.forward(_f64((5, 4), xp))


def test_batchnorm_needs_two_values_per_feature_in_training(xp):
    layer = nn.BatchNorm(3).astype("float64").to(xp)
    with pytest.raises(ValueError, match=r"BatchNorm: expected more than 1 value per feature in training mode"):
        layer.forward(_f64((1, 3), xp))
    layer.forward(_f64((1, 3), xp), train=False)  # evaluation of a single sample is fine


@pytest.mark.parametrize("layer", [nn.ReLU, nn.Sigmoid, nn.Softmax, lambda: nn.Dropout(0.5)])
def test_dy_with_the_wrong_shape_or_before_forward(xp, layer):
    name = type(layer()).__name__
    lay = layer()
    with pytest.raises(RuntimeError, match=f"{name}: backward called before forward"):
        lay.backward(_f64((3, 4), xp))
    lay.forward(_f64((3, 4), xp))
    with pytest.raises(ValueError, match=rf"{name}: expected dy of shape \(3, 4\) \(the forward output\), "
                                         r"got .*\(4, 3\)"):
        lay.backward(_f64((4, 3), xp))
    with pytest.raises(TypeError, match=rf"{name}: expected dy of dtype float64 .*dtype float32"):
        lay.backward(xp.astype(_f64((3, 4), xp), xp.float32))


def test_maxout_and_loss_backward_before_forward():
    with pytest.raises(RuntimeError, match="Maxout: backward called before forward"):
        nn.Maxout(2, 2).backward(np.ones((1, 2), dtype="float32"))
    with pytest.raises(RuntimeError, match="SoftmaxCrossEntropy: backward called before forward"):
        nn.SoftmaxCrossEntropy().backward()
    with pytest.raises(RuntimeError, match="Mul: backward called before forward"):
        nn.Mul().backward(1.0)
    with pytest.raises(RuntimeError, match="Affine: backward called before forward"):
        nn.Affine(2, 2).backward(np.ones((1, 2), dtype="float32"))
    with pytest.raises(RuntimeError, match="Flatten: backward called before forward"):
        nn.Flatten().backward(np.ones((1, 2), dtype="float32"))


# --------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("layer", [nn.ReLU, nn.Sigmoid, nn.Tanh, nn.ELU, nn.Softmax, lambda: nn.Affine(4, 2),
                                   lambda: nn.BatchNorm(4), lambda: nn.Dropout(0.5)])
def test_integer_input_is_rejected(xp, layer):
    lay = layer().to(xp)
    with pytest.raises(TypeError, match=rf"{type(lay).__name__}: expected x with a floating dtype \(float32 or "
                                        r"float64\), got an array of shape \(3, 4\) and dtype int64"):
        lay.forward(_arr(np.ones((3, 4), dtype="int64"), xp))


@pytest.mark.parametrize("layer,shape", [(lambda: nn.Affine(4, 2), (3, 4)), (lambda: nn.BatchNorm(4), (3, 4)),
                                         (lambda: nn.PReLU(4), (3, 4)), (lambda: nn.Maxout(4, 2, 2), (3, 4))])
def test_float32_input_with_float64_params_is_rejected(xp, layer, shape):
    lay = layer().astype("float64").to(xp)
    name = type(lay).__name__
    x = _arr(np.ones(shape, dtype="float32"), xp)
    with pytest.raises(TypeError, match=rf"{name}: input dtype float32 does not match parameter '\w+' dtype float64; "
                                        r"cast the input or call layer.astype\('float32'\)"):
        lay.forward(x)


def test_gates_never_cast_silently(xp):
    with pytest.raises(TypeError, match="Add: expected x and y of one dtype .*got float64 and float32"):
        nn.Add().forward(_f64((2,), xp), xp.astype(_f64((2,), xp), xp.float32))
    with pytest.raises(TypeError, match="Mul: x: expected a number or an array, got a str"):
        nn.Mul().forward("2", 3)


def test_non_array_input(xp):
    with pytest.raises(TypeError, match="ReLU: expected x to be an array, got a list"):
        nn.ReLU().forward([1.0, -1.0])
    with pytest.raises(TypeError, match="SoftmaxCrossEntropy: expected targets as an integer label array"):
        nn.SoftmaxCrossEntropy().forward(_f64((2, 3), xp), [0, 1])


# --------------------------------------------------------------------------- labels and targets


def test_labels_out_of_range(xp):
    s = _f64((4, 3), xp)
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: expected labels in \[0, 2\], got values from 0 to 3"):
        nn.SoftmaxCrossEntropy().forward(s, _arr(np.array([0, 1, 2, 3]), xp))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: expected labels in \[0, 2\], got values from -1 to 2"):
        nn.SoftmaxCrossEntropy().forward(s, _arr(np.array([0, -1, 2, 1]), xp))
    with pytest.raises(ValueError, match=r"one_hot: expected labels in \[0, 1\], got values from 0 to 2"):
        nn.one_hot(_arr(np.array([0, 2]), xp), 2)


def test_wrong_label_shape(xp):
    s = _f64((4, 3), xp)
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: expected labels of shape \(4,\), got .*\(4, 1\)"):
        nn.SoftmaxCrossEntropy().forward(s, _arr(np.zeros((4, 1), dtype="int64"), xp))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: expected labels of shape \(4,\), got .*\(3,\)"):
        nn.SoftmaxCrossEntropy().forward(s, _arr(np.zeros(3, dtype="int64"), xp))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: expected one-hot/soft targets of shape \(4, 3\) .*"
                                         r"got .*\(4, 2\)"):
        nn.SoftmaxCrossEntropy().forward(s, _f64((4, 2), xp))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: expected scores to be 2-D, got .*\(4,\)"):
        nn.SoftmaxCrossEntropy().forward(_f64((4,), xp), _arr(np.zeros(4, dtype="int64"), xp))
    with pytest.raises(TypeError, match="one_hot: expected an integer label array, got .*float64"):
        nn.one_hot(_f64((3,), xp), 3)


def test_target_dtypes(xp):
    s = _f64((4, 3), xp)
    with pytest.raises(TypeError, match="SoftmaxCrossEntropy: expected targets of dtype float64 .*dtype float32"):
        nn.SoftmaxCrossEntropy().forward(s, xp.astype(_f64((4, 3), xp), xp.float32))
    with pytest.raises(TypeError, match="MSE: expected targets of dtype float64 .*dtype float32"):
        nn.MSE().forward(s, xp.astype(_f64((4, 3), xp), xp.float32))
    with pytest.raises(TypeError, match="SigmoidBinaryCrossEntropy: expected float targets of dtype float64"):
        nn.SigmoidBinaryCrossEntropy().forward(s, xp.astype(_f64((4, 3), xp), xp.float32))


def test_regression_targets(xp):
    with pytest.raises(ValueError, match=r"MSE: expected targets of shape \(4, 3\) \(like the prediction\), "
                                         r"got .*\(4,\)"):
        nn.MSE().forward(_f64((4, 3), xp), _f64((4,), xp))
    with pytest.raises(ValueError, match=r"SigmoidBinaryCrossEntropy: expected targets of shape \(5,\)"):
        nn.SigmoidBinaryCrossEntropy().forward(_f64((5,), xp), _f64((5, 1), xp))
    with pytest.raises(ValueError, match=r"SigmoidBinaryCrossEntropy: expected targets in \[0, 1\], got values from 0 "
                                         r"to 2"):
        nn.SigmoidBinaryCrossEntropy().forward(_f64((3,), xp), _arr(np.array([0, 1, 2]), xp))


# --------------------------------------------------------------------------- empty batches


@pytest.mark.parametrize("layer,shape", [(lambda: nn.Affine(4, 2), (0, 4)), (nn.ReLU, (0, 4)),
                                         (lambda: nn.BatchNorm(4), (0, 4)), (lambda: nn.Dropout(0.5), (0, 4)),
                                         (nn.Softmax, (0, 4)), (nn.Flatten, (0, 2, 2))])
def test_empty_batch(xp, layer, shape):
    lay = layer().astype("float64").to(xp)
    with pytest.raises(ValueError, match=rf"{type(lay).__name__}: got an empty batch \(x has shape "
                                         rf"\({shape[0]}, {shape[1]}.*expected at least one sample"):
        lay.forward(_arr(np.zeros(shape), xp))


def test_empty_batch_in_losses(xp):
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: got an empty batch \(scores has shape \(0, 3\)\)"):
        nn.SoftmaxCrossEntropy().forward(_arr(np.zeros((0, 3)), xp), _arr(np.zeros(0, dtype="int64"), xp))
    with pytest.raises(ValueError, match=r"MSE: got an empty batch"):
        nn.MSE().forward(_arr(np.zeros((0, 3)), xp), _arr(np.zeros((0, 3)), xp))


# --------------------------------------------------------------------------- mixing NumPy and array_api_strict


def test_mixing_numpy_and_strict_arrays():
    x_np = np.ones((2, 4))
    x_strict = array_api_strict.asarray(x_np)
    affine = nn.Affine(4, 3).astype("float64")  # parameters on NumPy
    with pytest.raises(ValueError, match=r"Affine.forward: arrays from different libraries met "
                                         r"\(array_api_strict, numpy\).*model.to"):
        affine.forward(x_strict)
    for layer in (nn.PReLU(4), nn.BatchNorm(4), nn.Maxout(4, 2, 2)):
        layer.astype("float64")
        with pytest.raises(ValueError, match=rf"{type(layer).__name__}.forward: arrays from different libraries"):
            layer.forward(x_strict)
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy.forward: arrays from different libraries"):
        nn.SoftmaxCrossEntropy().forward(x_strict, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"MSE.forward: arrays from different libraries"):
        nn.MSE().forward(x_np, x_strict)
    with pytest.raises(ValueError, match=r"Add.forward: arrays from different libraries"):
        nn.Add().forward(x_np, x_strict)
    model = nn.Sequential(nn.Affine(4, 3), nn.ReLU()).astype("float64").to("strict")
    with pytest.raises(ValueError, match=r"Affine.forward: arrays from different libraries"):
        model.forward(x_np)
    assert isinstance(pytest.raises(ValueError, affine.forward, x_strict).value, backend.DeviceMismatchError)


# --------------------------------------------------------------------------- constructor arguments


@pytest.mark.parametrize("make,message", [
    (lambda: nn.Dropout(1.0), r"Dropout: expected a drop probability p in \[0, 1\), got 1.0"),
    (lambda: nn.Dropout(-0.1), r"Dropout: expected a drop probability p in \[0, 1\), got -0.1"),
    (lambda: nn.BatchNorm(0), r"BatchNorm: expected num_features >= 1, got 0"),
    (lambda: nn.BatchNorm(3, momentum=1.5), r"BatchNorm: expected momentum in \[0, 1\], got 1.5"),
    (lambda: nn.PReLU(0), r"PReLU: expected num_parameters >= 1, got 0"),
    (lambda: nn.Maxout(3, 2, 0), r"Maxout: expected positive sizes, got in=3, out=2, pieces=0"),
    (lambda: nn.Affine(0, 2), r"Affine: expected positive feature counts"),
    (lambda: nn.one_hot(np.array([0]), 0), r"one_hot: expected a positive number of classes, got 0"),
])
def test_bad_constructor_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
