"""Chapter 5's check kinds (grader/trusted/plans/energy.py, grader/kernel/records/energy.py), without a kernel.

Each kind accepts a correct student implementation over several seeds and rejects prepared mistakes
with a message naming the cause. The CD check in particular accepts a correct CD-k for any seed (the
uniforms are injected, so a correct sampler reproduces dlcore's exactly) and rejects swapped phases and
a forgotten hidden bias.
"""

from __future__ import annotations

import numpy as np
import pytest

from grader import checks, kinds
from grader.kernel.records.energy import PlannedUniforms

# --------------------------------------------------------------------------- a correct student (NumPy only)


def sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def logsumexp(a, axis=None):
    m = np.max(a, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))
    return np.squeeze(out, axis=axis) if axis is not None else out.item()


def energy(v, h, W, b, c):
    return -(v @ b) - (h @ c) - np.sum((v @ W) * h, axis=1)


def boltzmann(E):
    log_z = logsumexp(-E)
    return log_z, np.exp(logsumexp(-E, axis=1) - log_z)


def free_energy(v, W, b, c):
    return -(v @ b) - np.sum(softplus(c + v @ W), axis=1)


def p_h_given_v(v, W, c):
    return sigmoid(c + v @ W)


def p_v_given_h(h, W, b):
    return sigmoid(b + h @ W.T)


def sample(p, rng):
    return (rng.random(p.shape) < p).astype(float)


def gibbs_step(v, W, b, c, rng):
    h = sample(p_h_given_v(v, W, c), rng)
    return h, sample(p_v_given_h(h, W, b), rng)


def gibbs_chain(h, W, b, c, k, rng, last_h):
    """k steps v ~ p(v|h), then h ~ p(h|v) (after the last step only when ``last_h``): v_k, p(h|v_k), h."""
    for step in range(k):
        vk = sample(p_v_given_h(h, W, b), rng)
        phk = p_h_given_v(vk, W, c)
        if last_h or step < k - 1:
            h = sample(phk, rng)
    return vk, phk, h


def cd_gradient(v0, W, b, c, k, rng):
    ph0 = p_h_given_v(v0, W, c)
    vk, phk, _ = gibbs_chain(sample(ph0, rng), W, b, c, k, rng, last_h=False)
    n = v0.shape[0]
    return {"W": (vk.T @ phk - v0.T @ ph0) / n, "b": vk.mean(0) - v0.mean(0), "c": phk.mean(0) - ph0.mean(0)}


def pcd_gradient(v0, chain, W, b, c, k, rng):
    ph0 = p_h_given_v(v0, W, c)
    vk, phk, _ = gibbs_chain(sample(p_h_given_v(chain, W, c), rng), W, b, c, k, rng, last_h=True)
    grads = {"W": vk.T @ phk / vk.shape[0] - v0.T @ ph0 / v0.shape[0], "b": vk.mean(0) - v0.mean(0),
             "c": phk.mean(0) - ph0.mean(0)}
    return grads, vk


def reconstruction_error(v, W, b, c):
    return float(np.mean((v - sigmoid(b + sigmoid(c + v @ W) @ W.T)) ** 2))


def log_likelihood(X, W, b, c):
    n_h = W.shape[1]
    H = ((np.arange(2 ** n_h)[:, None] >> np.arange(n_h)) & 1).astype(float)
    log_z = logsumexp(H @ c + np.sum(softplus(b + H @ W.T), axis=1))
    return float(-np.mean(free_energy(X, W, b, c)) - log_z)


def pretrain_dbn(X, layer_sizes, train_rbm):
    layers, x = [], X
    for n_hidden in layer_sizes[1:]:
        W, b, c = train_rbm(x, n_hidden)
        layers.append((W, b, c))
        x = sigmoid(c + x @ W)
    return layers


def _run(kind, student, reference="RBM", **options):
    """plan → record → judge, as checks.check_<kind> does, returning the verdict instead of raising."""
    k = kinds.find(kind)
    assert k is not None, kind
    plan = k.plan(reference, **options)
    return k.judge(plan, k.record(student, plan.inputs))


def _fails(kind, student, *fragments, **options):
    v = _run(kind, student, **options)
    assert not v.ok, f"{kind} accepted a wrong implementation: {v.summary}"
    for f in fragments:
        assert f in v.message, f"{f!r} not in:\n{v.message}"
    return v.message


# --------------------------------------------------------------------------- formulas


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_formula_kinds_accept_correct_code(seed):
    for kind, fn, opts in [
        ("energy", energy, {}), ("boltzmann", boltzmann, {}), ("free_energy", free_energy, {}),
        ("conditional", p_h_given_v, {"which": "p_h_given_v"}), ("conditional", p_v_given_h, {"which": "p_v_given_h"}),
        ("reconstruction_error", reconstruction_error, {}), ("log_likelihood", log_likelihood, {}),
    ]:
        v = _run(kind, fn, seed=seed, **opts)
        assert v.ok, f"{kind}: {v.message}"
        assert v.summary


def test_formula_kinds_accept_large_parameters_when_stable():
    assert _run("free_energy", free_energy, seed=3, scale=400.0).ok
    assert _run("boltzmann", boltzmann, seed=3, scale=500.0).ok
    assert _run("conditional", p_h_given_v, which="p_h_given_v", seed=3, scale=800.0).ok


def test_energy_mistakes_are_named():
    _fails("energy", lambda v, h, W, b, c: -(v @ b) - np.sum((v @ W) * h, axis=1), "hidden-bias term −cᵀh is missing",
           "formula: E(v, h)")
    _fails("energy", lambda v, h, W, b, c: -(v @ b) - (h @ c) - np.sum(v @ W @ h.T, axis=1), "row by row")
    _fails("energy", lambda v, h, W, b, c: -np.sum(energy(v, h, W, b, c)), "shape")
    msg = _fails("energy", lambda v, h, W, b, c: (v @ b) + (h @ c) + np.sum((v @ W) * h, axis=1), "sign")
    assert "v = [[" in msg  # the inputs are printed


def test_overflow_is_a_failure_with_its_reason():
    def naive_free_energy(v, W, b, c):
        return -(v @ b) - np.sum(np.log(1 + np.exp(c + v @ W)), axis=1)

    assert _run("free_energy", naive_free_energy, seed=0).ok          # fine on small inputs
    _fails("free_energy", naive_free_energy, "overflow", "softplus", seed=3, scale=400.0)

    def naive_boltzmann(E):
        z = np.sum(np.exp(-E))
        return np.log(z), np.exp(-E).sum(axis=1) / z

    _fails("boltzmann", naive_boltzmann, "overflow", "log-sum-exp", seed=3, scale=500.0)
    _fails("conditional", lambda v, W, c: 1 / (1 + np.exp(-(c + v @ W))), "overflow", which="p_h_given_v", seed=3,
           scale=800.0)


def test_other_formula_mistakes():
    _fails("boltzmann", lambda E: (np.sum(np.exp(-E)), boltzmann(E)[1]), "Z itself")
    _fails("boltzmann", lambda E: (boltzmann(E)[0], np.exp(-E).sum(axis=0) / np.exp(boltzmann(E)[0])), "sum over h")
    _fails("free_energy", lambda v, W, b, c: -(v @ b) - np.sum(softplus(v @ W), axis=1), "hidden bias c is missing")
    _fails("conditional", lambda v, W, c: sigmoid(v @ W), "hidden bias c is missing", which="p_h_given_v")
    _fails("conditional", lambda h, W, b: sigmoid(h @ W.T), "visible bias b is missing", which="p_v_given_h")
    _fails("conditional", lambda h, W, b: sigmoid(h @ W), "raised ValueError", which="p_v_given_h", n_visible=5,
           n_hidden=3)
    _fails("reconstruction_error", lambda v, W, b, c: float(np.sum((v - sigmoid(b + sigmoid(c + v @ W) @ W.T)) ** 2)),
           "a sum instead of the mean")
    _fails("log_likelihood", lambda X, W, b, c: float(-np.mean(free_energy(X, W, b, c))), "log Z is missing")

    def mutating(v, h, W, b, c):
        v += 0.0
        v[0, 0] = 7.0
        return energy(v, h, W, b, c)

    _fails("energy", mutating, "in place")
    _fails("energy", lambda v, h, W, b, c: None, "forget a `return`")
    _fails("energy", lambda *a: (_ for _ in ()).throw(NotImplementedError()), "not implemented yet")


# --------------------------------------------------------------------------- sampler


def test_planned_uniforms_serve_blocks_then_a_seeded_stream():
    blocks = [np.full((2, 3), 0.25), np.full((2,), 0.5)]
    rng = PlannedUniforms(blocks, ["first", "second"], seed=4)
    assert np.array_equal(rng.random((2, 3)), blocks[0]) and np.array_equal(rng.random(size=2), blocks[1])
    assert np.array_equal(rng.random((3,)), np.random.default_rng(4).random((3,)))
    assert rng.draws == [[2, 3], [2], [3]]
    with pytest.raises(ValueError, match=r"draw #1 should have shape \(2, 3\) \(first\)"):
        PlannedUniforms(blocks, ["first", "second"]).random((3, 2))


@pytest.mark.parametrize("seed", [0, 1, 5, 11])
def test_sampler_accepts_correct_code_and_names_mistakes(seed):
    assert _run("sampler", gibbs_step, seed=seed).ok

    def reversed_cmp(v, W, b, c, rng):
        ph = p_h_given_v(v, W, c)
        h = (rng.random(ph.shape) > ph).astype(float)
        pv = p_v_given_h(h, W, b)
        return h, (rng.random(pv.shape) > pv).astype(float)

    _fails("sampler", reversed_cmp, "comparison is reversed", seed=seed)

    def v_first(v, W, b, c, rng):
        pv = sigmoid(b + v @ W @ W.T)
        u = rng.random(pv.shape)
        return u, u

    _fails("sampler", v_first, "draw #1 should have shape", seed=seed, n_visible=5, n_hidden=3)
    _fails("sampler", lambda v, W, b, c, rng: (sigmoid(c + v @ W), v), "binary SAMPLE", seed=seed)
    _fails("sampler", lambda v, W, b, c, rng: rng.binomial(1, 0.5), "rng.random(shape)", seed=seed)


# --------------------------------------------------------------------------- CD and PCD


def cd_swapped(v0, W, b, c, k, rng):
    g = cd_gradient(v0, W, b, c, k, rng)
    return {key: -val for key, val in g.items()}


def cd_no_hidden_bias(v0, W, b, c, k, rng):
    return cd_gradient(v0, W, b, np.zeros_like(c), k, rng)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 17, 123])
@pytest.mark.parametrize("k", [1, 3])
def test_cd_accepts_correct_code_for_any_seed(seed, k):
    v = _run("cd", cd_gradient, seed=seed, k=k)
    assert v.ok, v.message
    assert f"CD-{k}" in v.summary


@pytest.mark.parametrize("seed", [0, 4, 9])
def test_cd_rejects_swapped_phases_and_forgotten_hidden_bias(seed):
    _fails("cd", cd_swapped, "phases are swapped", "formula", seed=seed, k=2)
    _fails("cd", cd_no_hidden_bias, "hidden bias c is missing", seed=seed, k=2)

    def no_c_grad(v0, W, b, c, k, rng):
        g = cd_gradient(v0, W, b, c, k, rng)
        return {"W": g["W"], "b": g["b"]}

    _fails("cd", no_c_grad, "lacks ['c']", "hidden-bias gradient", seed=seed)


def test_cd_other_mistakes():
    def one_step(v0, W, b, c, k, rng):
        return cd_gradient(v0, W, b, c, 1, rng)

    _fails("cd", one_step, "only one Gibbs step", k=3, seed=1)

    def sampled_stats(v0, W, b, c, k, rng):
        h0 = sample(p_h_given_v(v0, W, c), rng)
        vk, _, h = gibbs_chain(h0, W, b, c, k, rng, last_h=True)
        n = v0.shape[0]
        return {"W": (vk.T @ h - v0.T @ h0) / n, "b": vk.mean(0) - v0.mean(0), "c": h.mean(0) - h0.mean(0)}

    _fails("cd", sampled_stats, "hidden SAMPLES", k=1, seed=2)

    def summed(v0, W, b, c, k, rng):
        g = cd_gradient(v0, W, b, c, k, rng)
        return {key: val * v0.shape[0] for key, val in g.items()}

    _fails("cd", summed, "missing 1/N", seed=0)


def test_cd_against_the_exact_gradient_shows_the_bias_shrink():
    v = _run("cd", cd_gradient, seed=0, k=1, exact=True)
    assert v.ok, v.message
    assert "shrinks from" in v.summary and "(k = 30)" in v.summary

    def cd_always_one(v0, W, b, c, k, rng):       # passes the injected CD-1 case, but ignores k
        return cd_gradient(v0, W, b, c, 1, rng)

    _fails("cd", cd_always_one, "exact gradient", seed=0, k=1, exact=True)


@pytest.mark.parametrize("seed", [0, 1, 8])
def test_pcd_accepts_correct_code_and_names_mistakes(seed):
    assert _run("pcd", pcd_gradient, seed=seed, k=2).ok

    def restart(v0, chain, W, b, c, k, rng):
        return pcd_gradient(v0, v0, W, b, c, k, rng)

    _fails("pcd", restart, "restarted at the data", seed=seed)

    def swapped(v0, chain, W, b, c, k, rng):
        g, ch = pcd_gradient(v0, chain, W, b, c, k, rng)
        return {key: -val for key, val in g.items()}, ch

    _fails("pcd", swapped, "phases are swapped", seed=seed)

    def by_batch(v0, chain, W, b, c, k, rng):
        g, ch = pcd_gradient(v0, chain, W, b, c, k, rng)
        n = v0.shape[0]
        ph0 = sigmoid(c + v0 @ W)
        phk = sigmoid(c + ch @ W)
        return {"W": ch.T @ phk / n - v0.T @ ph0 / n, "b": ch.sum(0) / n - v0.mean(0),
                "c": phk.sum(0) / n - ph0.mean(0)}, ch

    _fails("pcd", by_batch, "averaged over the batch size", seed=seed)
    _fails("pcd", lambda v0, chain, W, b, c, k, rng: (pcd_gradient(v0, chain, W, b, c, k, rng)[0], chain),
           "returned unchanged", seed=seed)


# --------------------------------------------------------------------------- DBN


@pytest.mark.parametrize("seed", [0, 1])
def test_dbn_pretraining_checks_the_greedy_loop(seed):
    assert _run("dbn_pretraining", pretrain_dbn, "DBN", seed=seed).ok
    assert _run("dbn_pretraining", pretrain_dbn, "DBN", seed=seed, layer_sizes=[5, 4, 3, 2]).ok

    def same_x(X, sizes, train_rbm):
        return [train_rbm(X if i == 0 else np.zeros((X.shape[0], sizes[i])), n) for i, n in enumerate(sizes[1:])]

    _fails("dbn_pretraining", same_x, "RBM 2", "rule", reference="DBN", seed=seed)

    def no_sigmoid(X, sizes, train_rbm):
        layers, x = [], X
        for n in sizes[1:]:
            W, b, c = train_rbm(x, n)
            layers.append((W, b, c))
            x = c + x @ W
        return layers

    _fails("dbn_pretraining", no_sigmoid, "sigmoid is missing", reference="DBN", seed=seed)

    def samples(X, sizes, train_rbm):
        layers, x, r = [], X, np.random.default_rng(0)
        for n in sizes[1:]:
            W, b, c = train_rbm(x, n)
            layers.append((W, b, c))
            x = sample(p_h_given_v(x, W, c), r)
        return layers

    _fails("dbn_pretraining", samples, "binary samples were passed", reference="DBN", seed=seed)

    def reversed_layers(X, sizes, train_rbm):
        return pretrain_dbn(X, sizes, train_rbm)[::-1]

    _fails("dbn_pretraining", reversed_layers, "in order", reference="DBN", seed=seed)


def test_dbn_training_judges_accuracy_on_labels_the_kernel_never_sees():
    plan = kinds.find("dbn_training").plan("DBN", seed=3)
    assert set(plan.inputs) == {"x_train", "t_train", "x_test", "seed", "layers"}
    assert [w.shape for w, _, _ in plan.inputs["layers"]] == [(64, 256), (256, 256)]   # dlcore's pretrained RBMs
    t_test = plan.expected["t_test"]
    judge = kinds.find("dbn_training").judge

    def rec(scores, returned="<function>", layer_calls=(256, 256)):
        return {"error": None, "predict_error": None, "scores": scores, "returned": returned,
                "layer_calls": list(layer_calls)}

    assert judge(plan, rec(np.eye(10)[t_test])).ok
    assert judge(plan, rec(t_test.copy())).ok
    worse = t_test.copy()
    worse[:40] = (worse[:40] + 1) % 10
    v = judge(plan, rec(np.eye(10)[worse]))
    assert not v.ok and "below the required 96%" in v.message
    v = judge(plan, rec(None, "<Sequential>"))
    assert not v.ok and "return a function predict(x)" in v.message
    v = judge(plan, rec(np.eye(10)[t_test], layer_calls=()))
    assert not v.ok and "called 0 times" in v.message
    # the record runs the student's classifier on the plan's data, pretraining through the plan's RBMs,
    # and returns scores for the test inputs only
    seen = []

    def classifier(x, t, seed, train_layer=None):
        seen.extend(train_layer(x, n)[0].shape for n in (256, 256))
        return lambda xs: np.eye(10)[np.zeros(xs.shape[0], dtype=int)]

    r = kinds.find("dbn_training").record(classifier, plan.inputs)
    assert seen == [(64, 256), (256, 256)] and r["layer_calls"] == [256, 256]
    assert r["scores"].shape == (t_test.shape[0], 10)
    assert not judge(plan, r).ok


def test_kinds_are_public_helpers():
    for kind in ("energy", "boltzmann", "free_energy", "conditional", "reconstruction_error", "log_likelihood",
                 "sampler", "cd", "pcd", "dbn_pretraining", "dbn_training"):
        assert callable(getattr(checks, f"check_{kind}"))
    checks.check_cd(cd_gradient, "RBM", k=2, seed=5)
    with pytest.raises(AssertionError, match="phases are swapped"):
        checks.check_cd(cd_swapped, "RBM", k=2, seed=5)
