"""DBN (greedy pretraining, up-pass, sampling, MLP conversion) and autoencoders (gradients, stacking).

All tests run on each backend of the ``xp`` fixture, except the slow digits experiment (NumPy only).
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcore import backend
from dlcore.energy import DBN, Autoencoder, StackedAutoencoder
from dlcore.gradcheck import assert_layer_gradients, numerical_gradient, relative_error


def _np(a):
    return backend.to_numpy(a).astype("float64")


def _dev(a, xp, dtype="float64"):
    return backend.to_device(np.asarray(a, dtype=dtype), xp)


def _bars(n=120, seed=0):
    """4x4 binary images with one horizontal or vertical bar, 5% pixel noise (16 visible units)."""
    g = np.random.default_rng(seed)
    X = np.zeros((n, 4, 4))
    for i in range(n):
        j = g.integers(0, 4)
        if g.random() < 0.5:
            X[i, j, :] = 1.0
        else:
            X[i, :, j] = 1.0
    X = X.reshape(n, 16)
    return np.abs(X - (g.random(X.shape) < 0.05))


# --------------------------------------------------------------------------- DBN


def test_dbn_pretraining_lowers_each_layers_reconstruction_error(xp):
    X = _dev(_bars(), xp)
    dbn = DBN([16, 12, 8], rng=0, dtype="float64").to(xp)
    hists = dbn.pretrain(X, epochs=[15, 15], batch_size=10, lr=0.2, rng=1, progress=False)
    assert len(hists) == 2 and hists is dbn.histories
    for layer, h in enumerate(hists):
        assert len(h["reconstruction_error"]) == 16
        assert h["reconstruction_error"][-1] < 0.8 * h["reconstruction_error"][0], f"layer {layer}: {h}"
    assert "pseudo_likelihood" in hists[0] and "pseudo_likelihood" not in hists[1]  # upper layer: probabilities

    top = dbn.up_pass(X)
    layers = dbn.up_pass(X, all_layers=True)
    assert tuple(top.shape) == (120, 8) and len(layers) == 2
    r0, r1 = dbn.rbms
    np.testing.assert_allclose(_np(top), _np(r1.transform(r0.transform(X))), rtol=1e-12)

    samples = dbn.sample(7, gibbs_steps=20, rng=2)
    s = _np(samples)
    assert s.shape == (7, 16) and np.all((s >= 0.0) & (s <= 1.0))
    seeded = dbn.sample(3, gibbs_steps=0, rng=2, init=X[:3, :])
    assert tuple(seeded.shape) == (3, 16)


def test_dbn_to_mlp_copies_the_rbm_weights(xp):
    X = _dev(_bars(20), xp)
    dbn = DBN([16, 6, 4], rng=0, dtype="float64").to(xp)
    dbn.pretrain(X, epochs=2, batch_size=10, rng=1, progress=False)
    features = dbn.to_mlp(None)
    assert [type(layer).__name__ for layer in features] == ["Affine", "Sigmoid", "Affine", "Sigmoid"]
    np.testing.assert_allclose(_np(features.forward(X, train=False)), _np(dbn.up_pass(X)), rtol=1e-12)

    mlp = dbn.to_mlp(3, rng=5)
    assert len(mlp) == 5 and tuple(mlp.params["4.W"].shape) == (4, 3)
    assert tuple(mlp.forward(X, train=False).shape) == (20, 3)
    before = _np(dbn.rbms[0].params["W"]).copy()
    mlp.params["0.W"] = mlp.params["0.W"] + 1.0          # fine-tuning must not touch the DBN
    np.testing.assert_array_equal(_np(dbn.rbms[0].params["W"]), before)

    scratch = dbn.to_mlp(3, rng=5, pretrained=False)
    assert not np.allclose(_np(scratch.params["0.W"]), before)


def test_dbn_bad_input():
    with pytest.raises(ValueError, match="DBN: expected at least two positive layer sizes"):
        DBN([16])
    dbn = DBN([4, 3], rng=0)
    with pytest.raises(ValueError, match=r"RBM\.fit: expected binary data"):
        dbn.pretrain(np.full((5, 4), 0.5, dtype="float32"), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"DBN: expected epochs for each of the 1 layers"):
        dbn.pretrain(np.zeros((5, 4), dtype="float32"), epochs=[1, 2], progress=False)
    gauss = DBN([3, 4, 2], visible="gaussian", rng=0)
    gauss.pretrain(np.random.default_rng(0).normal(size=(10, 3)).astype("float32"), epochs=1, batch_size=5,
                   progress=False)
    assert type(gauss.rbms[0]).__name__ == "GaussianBernoulliRBM"


def test_dbn_gives_each_layer_its_own_optimizer():
    from dlcore.optim import Momentum

    opt = Momentum(0.1)
    dbn = DBN([16, 8, 4], rng=0, dtype="float64")
    dbn.pretrain(_bars(40), 2, 10, optimizer=opt, rng=1, progress=False)
    assert opt.step_count == 0                                  # copied, not shared
    assert all(np.abs(r.params["c"]).max() > 0 for r in dbn.rbms)   # every layer was updated
    dbn.pretrain(_bars(40), 1, 10, optimizer=lambda: Momentum(0.1), rng=1, progress=False)


# --------------------------------------------------------------------------- autoencoders


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5])
def test_autoencoder_gradients(xp, tied, loss, sparsity):
    for n in (1, 4):
        ae = Autoencoder(5, 3, tied=tied, loss=loss, sparsity=sparsity, rho=0.1, rng=n).astype("float64").to(xp)
        x = _dev(np.random.default_rng(n).uniform(0.05, 0.95, (n, 5)), xp)
        assert_layer_gradients(ae, x, train=False, rtol=1e-6)


def test_denoising_autoencoder_gradients_with_fixed_mask(xp):
    ae = Autoencoder(6, 4, tied=True, noise=0.3, sparsity=0.2, rng=0).astype("float64").to(xp)
    g = np.random.default_rng(1)
    x = _dev(g.uniform(0.05, 0.95, (3, 6)), xp)
    mask = _dev(g.random((3, 6)) >= 0.3, xp)
    loss, grads = ae.loss_and_grads(x, mask=mask)
    assert set(grads) == {"W", "b", "c"}

    def f():
        return ae.forward(x, mask=mask)

    for name in ae.params:
        err, where = relative_error(grads[name], numerical_gradient(f, ae.params[name]))
        assert err < 1e-6, f"{name}: {err:.2e} at {where}"
    ae.forward(x, mask=mask)                           # refresh the cache left by the perturbed passes
    dx = ae.backward()
    err, where = relative_error(dx, numerical_gradient(f, x))
    assert err < 1e-6, f"dx: {err:.2e} at {where}"
    # training mode corrupts the input (a different loss), evaluation mode does not
    clean = float(ae.forward(x, train=False))
    assert float(ae.forward(x, train=True, rng=3)) != pytest.approx(clean)
    assert float(ae.forward(x, train=False)) == pytest.approx(clean)
    assert loss != pytest.approx(clean)


def test_autoencoder_training_and_stacking(xp):
    X = _dev(_bars(), xp)
    sae = StackedAutoencoder([16, 10, 6], rng=0, dtype="float64", noise=0.1).to(xp)
    hists = sae.pretrain(X, epochs=20, batch_size=10, lr=0.5, rng=1, progress=False)
    for layer, h in enumerate(hists):
        assert len(h["loss"]) == 21 and h["loss"][-1] < h["loss"][0], f"layer {layer}"
        assert h["reconstruction_error"][-1] < h["reconstruction_error"][0], f"layer {layer}"
    code = sae.transform(X)
    assert tuple(code.shape) == (120, 6)
    np.testing.assert_allclose(_np(sae.to_mlp(None).forward(X, train=False)), _np(code), rtol=1e-12)
    assert tuple(sae.to_mlp(2, rng=0).forward(X, train=False).shape) == (120, 2)
    assert tuple(sae.autoencoders[0].reconstruct(X).shape) == (120, 16)


def test_autoencoder_bad_input(xp):
    ae = Autoencoder(4, 2, rng=0).astype("float64").to(xp)
    with pytest.raises(ValueError, match=r"Autoencoder\.forward: the cross-entropy loss needs inputs in \[0, 1\]"):
        ae.forward(_dev(np.full((2, 4), 2.0), xp))
    with pytest.raises(ValueError, match=r"Autoencoder\.encode: expected x with last dimension 4"):
        ae.encode(_dev(np.zeros((2, 5)), xp))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Autoencoder(4, 2, rng=0).backward()
    with pytest.raises(ValueError, match="Autoencoder: expected loss in"):
        Autoencoder(4, 2, loss="hinge")
    Autoencoder(4, 2, loss="mse", rng=0).astype("float64").to(xp).forward(_dev(np.full((2, 4), 2.0), xp))


# --------------------------------------------------------------------------- the chapter's experiment


@pytest.mark.slow
def test_dbn_pretrained_then_fine_tuned_on_digits():
    """Digits (pixels in [0, 1] used as Bernoulli means): DBN 64-256-256, CD-1, then Adam fine-tuning.

    About 2 s of CPU time. BLAS runs on one thread: these matrices are too small to gain from two, and
    OpenBLAS's spinning threads slow down by an order of magnitude when other processes share the cores.
    """
    from threadpoolctl import threadpool_limits

    import dlcore
    from dlcore.nn import SoftmaxCrossEntropy
    from dlcore.optim import Adam

    d = dlcore.data.load_digits()
    with threadpool_limits(limits=1, user_api="blas"):
        dbn = DBN([64, 256, 256], rng=0)
        dbn.pretrain(d.x_train, epochs=15, batch_size=10, lr=0.1, k=1, probabilities=True, rng=1, progress=False)
        mlp = dbn.to_mlp(10, rng=2)
        dlcore.fit(mlp, d.x_train, d.t_train, loss=SoftmaxCrossEntropy(), optimizer=Adam(1e-2), epochs=30,
                   batch_size=32, rng=3, progress=False)
        acc = dlcore.evaluate(mlp, d.x_test, d.t_test)["accuracy"]
    assert acc >= 0.96, f"DBN test accuracy {acc:.4f} < 0.96"
