"""dlcore.optim: update rules against explicit NumPy formulas, schedules, clipping, max-norm, in-place semantics."""

from __future__ import annotations

import math
from collections.abc import MutableMapping

import numpy as np
import pytest

from dlcore import backend, optim

W0 = np.array([1.0, -2.0, 0.5])
GRADS = [np.array([0.5, -1.0, 2.0]), np.array([-0.25, 0.75, 1.0]), np.array([1.5, 0.0, -0.5])]


# --------------------------------------------------------------------------- reference formulas (plain NumPy)


def ref_sgd(w, gs, lr):
    out = []
    for g in gs:
        w = w - lr * g
        out.append(w)
    return out


def ref_momentum(w, gs, lr, mu):
    dw, out = np.zeros_like(w), []
    for g in gs:
        dw = mu * dw - lr * g
        w = w + dw
        out.append(w)
    return out


def ref_nesterov(w, gs, lr, mu):
    dw, out = np.zeros_like(w), []
    for g in gs:
        dw = mu * dw - lr * g
        w = w + mu * dw - lr * g
        out.append(w)
    return out


def ref_adagrad(w, gs, lr, eps):
    h, out = np.zeros_like(w), []
    for g in gs:
        h = h + g**2
        w = w - lr * g / (np.sqrt(h) + eps)
        out.append(w)
    return out


def ref_rmsprop(w, gs, lr, rho, eps):
    h, out = np.zeros_like(w), []
    for g in gs:
        h = rho * h + (1 - rho) * g**2
        w = w - lr * g / (np.sqrt(h) + eps)
        out.append(w)
    return out


def ref_adam(w, gs, lr, b1, b2, eps, decoupled_wd=0.0):
    m, v, out = np.zeros_like(w), np.zeros_like(w), []
    for t, g in enumerate(gs, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        mhat, vhat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr * decoupled_wd * w - lr * mhat / (np.sqrt(vhat) + eps)
        out.append(w)
    return out


CASES = {
    "SGD": (lambda: optim.SGD(0.1), lambda w, gs: ref_sgd(w, gs, 0.1)),
    "Momentum": (lambda: optim.Momentum(0.1, momentum=0.8), lambda w, gs: ref_momentum(w, gs, 0.1, 0.8)),
    "Nesterov": (lambda: optim.Nesterov(0.1, momentum=0.8), lambda w, gs: ref_nesterov(w, gs, 0.1, 0.8)),
    "AdaGrad": (lambda: optim.AdaGrad(0.3, eps=1e-3), lambda w, gs: ref_adagrad(w, gs, 0.3, 1e-3)),
    "RMSProp": (lambda: optim.RMSProp(0.05, rho=0.9, eps=1e-3), lambda w, gs: ref_rmsprop(w, gs, 0.05, 0.9, 1e-3)),
    "Adam": (lambda: optim.Adam(0.1, beta1=0.8, beta2=0.9, eps=1e-3),
             lambda w, gs: ref_adam(w, gs, 0.1, 0.8, 0.9, 1e-3)),
    "AdamW": (lambda: optim.AdamW(0.1, beta1=0.8, beta2=0.9, eps=1e-3, weight_decay=0.5),
              lambda w, gs: ref_adam(w, gs, 0.1, 0.8, 0.9, 1e-3, decoupled_wd=0.5)),
}
NAMES = list(CASES)


def dev(a, xp):
    return backend.to_device(np.array(a, dtype="float64"), xp)     # a copy: updates must not touch `a`


# --------------------------------------------------------------------------- hand-computed steps


@pytest.mark.parametrize("name", NAMES)
def test_three_steps_match_formulas(xp, name):
    make, ref = CASES[name]
    opt = make()
    params = {"w": dev(W0, xp)}
    expected = ref(W0.copy(), GRADS)
    for step, (g, want) in enumerate(zip(GRADS, expected, strict=True), start=1):
        opt.update(params, {"w": dev(g, xp)})
        np.testing.assert_allclose(backend.to_numpy(params["w"]), want, rtol=1e-13, atol=1e-15,
                                   err_msg=f"{name} after step {step}")
    assert opt.step_count == 3


def test_sgd_and_momentum_by_hand():
    """Numbers worked out on paper: lr = 0.1, μ = 0.5, g = 1 then 2 then -1 on a scalar weight 1."""
    sgd, mom = optim.SGD(0.1), optim.Momentum(0.1, momentum=0.5)
    ps, pm = {"w": np.array([1.0])}, {"w": np.array([1.0])}
    want_sgd, want_mom = [0.9, 0.7, 0.8], [0.9, 0.65, 0.625]   # Δw: -0.1, -0.25, -0.025
    for g, ws, wm in zip([1.0, 2.0, -1.0], want_sgd, want_mom, strict=True):
        sgd.update(ps, {"w": np.array([g])})
        mom.update(pm, {"w": np.array([g])})
        assert ps["w"][0] == pytest.approx(ws, abs=1e-15)
        assert pm["w"][0] == pytest.approx(wm, abs=1e-15)


def test_momentum_equals_pytorch_form_with_constant_lr():
    """Lecture Δw ← μΔw − εg, w ← w + Δw  ==  PyTorch v ← μv + g, w ← w − εv  (Δw = −εv)."""
    rng = np.random.default_rng(1)
    lr, mu = 0.05, 0.9
    opt = optim.Momentum(lr, momentum=mu)
    p = {"w": rng.normal(size=5)}
    w_t, v = p["w"].copy(), np.zeros(5)
    for _ in range(10):
        g = rng.normal(size=5)
        opt.update(p, {"w": g})
        v = mu * v + g
        w_t = w_t - lr * v
        np.testing.assert_allclose(opt.state["w"]["velocity"], -lr * v, rtol=1e-12)
    np.testing.assert_allclose(p["w"], w_t, rtol=1e-12)


# --------------------------------------------------------------------------- minimizing a test function


def rosenbrock(w):
    """f(x, y) = (1 − x)² + 5 (y − x²)²: minimum 0 at (1, 1), a curved valley."""
    x, y = float(w[0]), float(w[1])
    return (1 - x) ** 2 + 5 * (y - x * x) ** 2


def rosenbrock_grad(w):
    x, y = float(w[0]), float(w[1])
    return np.array([-2 * (1 - x) - 20 * x * (y - x * x), 10 * (y - x * x)])


MINIMIZE = {   # optimizer, steps, required factor f(start) / f(end)
    "SGD": (lambda: optim.SGD(0.02), 300, 1e3),
    "Momentum": (lambda: optim.Momentum(0.005, momentum=0.9), 300, 1e6),
    "Nesterov": (lambda: optim.Nesterov(0.005, momentum=0.9), 300, 1e6),
    "AdaGrad": (lambda: optim.AdaGrad(0.5), 300, 1e3),
    "RMSProp": (lambda: optim.RMSProp(0.01), 300, 1e2),
    "Adam": (lambda: optim.Adam(0.05), 300, 1e6),
    "AdamW": (lambda: optim.AdamW(0.05, weight_decay=0.01), 300, 1e4),
}


@pytest.mark.parametrize("name", NAMES)
def test_minimizes_rosenbrock_valley(name):
    make, steps, factor = MINIMIZE[name]
    opt = make()
    params = {"w": np.array([-1.0, 1.5])}
    f0 = rosenbrock(params["w"])
    for _ in range(steps):
        opt.update(params, {"w": rosenbrock_grad(params["w"])})
    assert f0 / rosenbrock(params["w"]) > factor, f"{name}: f went from {f0} to {rosenbrock(params['w'])}"


@pytest.mark.parametrize("name", NAMES)
def test_minimizes_quadratic_on_backend(xp, name):
    """f(w) = ½ wᵀ diag(1, 10) w from (2, 1), on every backend, in float32: f drops by 100x in 200 steps."""
    make = {"SGD": lambda: optim.SGD(0.05), "Momentum": lambda: optim.Momentum(0.02),
            "Nesterov": lambda: optim.Nesterov(0.02), "AdaGrad": lambda: optim.AdaGrad(0.5),
            "RMSProp": lambda: optim.RMSProp(0.02), "Adam": lambda: optim.Adam(0.05),
            "AdamW": lambda: optim.AdamW(0.05)}[name]
    opt = make()
    a = backend.to_device(np.array([1.0, 10.0], dtype="float32"), xp)
    params = {"w": backend.to_device(np.array([2.0, 1.0], dtype="float32"), xp)}

    def f():
        return 0.5 * float(xp.sum(a * params["w"] * params["w"]))

    f0 = f()
    for _ in range(200):
        opt.update(params, {"w": a * params["w"]})
    assert backend.dtype_name(params["w"].dtype) == "float32"
    assert f0 / f() > 100, f"{name}: f went from {f0} to {f()}"


# --------------------------------------------------------------------------- schedules


def test_schedules_follow_their_formulas():
    ts = range(0, 60)
    cases = [
        (optim.constant(0.3), lambda t: 0.3),
        (optim.StepDecay(0.5, step_size=7, gamma=0.5), lambda t: 0.5 * 0.5 ** (t // 7)),
        (optim.LinearDecay(0.1, alpha=0.002, min_lr=0.01), lambda t: max(0.1 - 0.002 * t, 0.01)),
        (optim.ExponentialDecay(0.2, gamma=0.95), lambda t: 0.2 * 0.95**t),
        (optim.CosineDecay(0.4, total_steps=40, min_lr=0.05),
         lambda t: 0.05 + 0.35 * 0.5 * (1 + math.cos(math.pi * min(t, 40) / 40))),
        (optim.Warmup(optim.ExponentialDecay(0.2, gamma=0.9), warmup_steps=5),
         lambda t: 0.2 * (t + 1) / 5 if t < 5 else 0.2 * 0.9 ** (t - 5)),
    ]
    for sched, formula in cases:
        for t in ts:
            assert sched(t) == pytest.approx(formula(t), rel=1e-14, abs=1e-15), (sched, t)
    lin = optim.LinearDecay(0.1, alpha=0.002, min_lr=0.01)
    assert lin(0) == 0.1 and lin(45) == pytest.approx(0.01) and lin(1000) == 0.01
    cos = optim.CosineDecay(0.4, total_steps=40)
    assert cos(0) == 0.4 and cos(20) == pytest.approx(0.2) and cos(40) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("bad", [
    lambda: optim.StepDecay(0.1, step_size=0), lambda: optim.StepDecay(-0.1, step_size=3),
    lambda: optim.LinearDecay(0.1, alpha=0.01, min_lr=0.2), lambda: optim.ExponentialDecay(0.1, gamma=1.5),
    lambda: optim.CosineDecay(0.1, total_steps=0), lambda: optim.Warmup(0.1, warmup_steps=-1),
    lambda: optim.constant(0.1)(-1),
])
def test_schedules_reject_bad_arguments(bad):
    with pytest.raises(ValueError):
        bad()


def test_optimizer_lr_follows_schedule_per_update(xp):
    sched = optim.StepDecay(0.1, step_size=2, gamma=0.5)
    opt = optim.SGD(schedule=sched)
    p = {"w": dev([0.0], xp)}
    g = {"w": dev([1.0], xp)}
    w_prev = 0.0
    for t in range(6):
        assert opt.lr == sched(t)
        opt.update(p, g)
        w = float(backend.to_numpy(p["w"])[0])
        assert w - w_prev == pytest.approx(-sched(t), rel=1e-12)     # the step used ε_t
        w_prev = w
    assert opt.step_count == 6 and opt.lr == sched(6)
    # a schedule may also be passed as lr, and stepped once every n updates (per epoch)
    per_epoch = optim.SGD(optim.LinearDecay(0.3, alpha=0.1), schedule_every=3)
    for t in range(7):
        assert per_epoch.lr == pytest.approx(0.3 - 0.1 * (t // 3))
        per_epoch.update({"w": dev([0.0], xp)}, {"w": dev([1.0], xp)})


def test_lr_setter_replaces_schedule():
    opt = optim.Adam(optim.ExponentialDecay(0.1, 0.5))
    opt.lr = 0.02
    assert opt.schedule is None and opt.lr == 0.02


# --------------------------------------------------------------------------- clipping, max-norm, weight decay


def test_clip_grad_norm_keeps_direction_and_sets_norm(xp, rng):
    g_np = {"W": rng.normal(size=(4, 3)) * 3, "b": rng.normal(size=3)}
    norm = math.sqrt(sum(float(np.sum(v**2)) for v in g_np.values()))
    grads = {k: dev(v, xp) for k, v in g_np.items()}
    total = optim.clip_grad_norm(grads, 1.5)
    assert total == pytest.approx(norm, rel=1e-12)
    assert optim.global_norm(grads) == pytest.approx(1.5, rel=1e-12)
    for k, v in g_np.items():                    # same direction: every entry scaled by 1.5 / ||g||
        np.testing.assert_allclose(backend.to_numpy(grads[k]), v * 1.5 / norm, rtol=1e-12)
    small = {k: dev(v, xp) for k, v in g_np.items()}
    assert optim.clip_grad_norm(small, 100.0) == pytest.approx(norm)
    for k, v in g_np.items():
        np.testing.assert_array_equal(backend.to_numpy(small[k]), v)
    assert optim.clip_grad_norm({}, 1.0) == 0.0
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm(grads, 0.0)


def test_clip_norm_option_clips_a_copy_before_the_step(xp, rng):
    g_np = {"W": rng.normal(size=(3, 2)) * 5, "b": rng.normal(size=2) * 5}
    w_np = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    norm = math.sqrt(sum(float(np.sum(v**2)) for v in g_np.values()))
    params = {k: dev(v, xp) for k, v in w_np.items()}
    grads = {k: dev(v, xp) for k, v in g_np.items()}
    opt = optim.SGD(0.1, clip_norm=2.0)
    opt.update(params, grads)
    assert opt.last_grad_norm == pytest.approx(norm)
    for k in w_np:
        np.testing.assert_allclose(backend.to_numpy(params[k]), w_np[k] - 0.1 * g_np[k] * 2.0 / norm, rtol=1e-12)
        np.testing.assert_array_equal(backend.to_numpy(grads[k]), g_np[k])     # caller's grads untouched


def test_max_norm_constrains_columns_and_filters_not_biases(xp, rng):
    c = 1.0
    W = rng.normal(size=(5, 4))
    W[:, 0] *= 0.05                                 # one column already inside the ball
    K = rng.normal(size=(3, 2, 3, 3))
    b = rng.normal(size=4) * 10
    params = {"W": dev(W, xp), "K": dev(K, xp), "b": dev(b, xp)}
    zeros = {k: dev(np.zeros_like(v), xp) for k, v in {"W": W, "K": K, "b": b}.items()}
    optim.SGD(0.1, max_norm=c).update(params, zeros)
    Wn, Kn, bn = (backend.to_numpy(params[k]) for k in ("W", "K", "b"))
    col = np.linalg.norm(Wn, axis=0)
    filt = np.linalg.norm(Kn.reshape(3, -1), axis=1)
    assert np.all(col <= c * (1 + 1e-12)) and np.all(filt <= c * (1 + 1e-12))
    np.testing.assert_allclose(col[1:], c, rtol=1e-12)                 # big columns land on the sphere
    np.testing.assert_array_equal(Wn[:, 0], W[:, 0])                   # small one untouched
    np.testing.assert_allclose(Wn[:, 1:], W[:, 1:] / np.linalg.norm(W[:, 1:], axis=0), rtol=1e-12)  # direction kept
    np.testing.assert_allclose(Kn, K / np.linalg.norm(K.reshape(3, -1), axis=1)[:, None, None, None], rtol=1e-12)
    np.testing.assert_array_equal(bn, b)                                # biases are never constrained


@pytest.mark.parametrize("name", ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam"])
def test_weight_decay_equals_adding_lambda_w_to_the_gradient(xp, name, rng):
    make = CASES[name][0]
    lam = 0.3
    a, b = make(), make()
    a.weight_decay = lam
    w0 = rng.normal(size=(3, 2))
    pa, pb = {"w": dev(w0, xp)}, {"w": dev(w0, xp)}
    for _ in range(3):
        g = dev(rng.normal(size=(3, 2)), xp)
        gb = g + lam * pb["w"]
        a.update(pa, {"w": g})
        b.update(pb, {"w": gb})
    np.testing.assert_allclose(backend.to_numpy(pa["w"]), backend.to_numpy(pb["w"]), rtol=1e-12)


def test_adamw_decay_is_decoupled_and_biases_can_be_skipped(rng):
    w0, b0 = rng.normal(size=(3, 2)), rng.normal(size=2)
    gs = [(rng.normal(size=(3, 2)), rng.normal(size=2)) for _ in range(3)]
    adamw = optim.AdamW(0.1, weight_decay=0.2, decay_biases=False)
    p = {"W": w0.copy(), "b": b0.copy()}
    for gw, gb in gs:
        adamw.update(p, {"W": gw, "b": gb})
    np.testing.assert_allclose(p["W"], ref_adam(w0, [g[0] for g in gs], 0.1, 0.9, 0.999, 1e-8, 0.2)[-1], rtol=1e-12)
    np.testing.assert_allclose(p["b"], ref_adam(b0, [g[1] for g in gs], 0.1, 0.9, 0.999, 1e-8, 0.0)[-1], rtol=1e-12)
    sgd = optim.SGD(0.1, weight_decay=0.5, decay_biases=False)
    q = {"W": w0.copy(), "b": b0.copy()}
    sgd.update(q, {"W": np.zeros((3, 2)), "b": np.zeros(2)})
    np.testing.assert_allclose(q["W"], w0 * (1 - 0.05), rtol=1e-14)
    np.testing.assert_array_equal(q["b"], b0)


# --------------------------------------------------------------------------- in place, state, write-through


class LayerView(MutableMapping):
    """A Sequential-like view: keys '0.W', '1.b' write through to the layers' own dicts."""

    def __init__(self, layers):
        self.layers, self.writes = layers, []

    def _split(self, key):
        i, name = key.split(".")
        return self.layers[int(i)], name

    def __getitem__(self, key):
        d, name = self._split(key)
        return d[name]

    def __setitem__(self, key, value):
        d, name = self._split(key)
        d[name] = value
        self.writes.append(key)

    def __delitem__(self, key):  # pragma: no cover - not used
        raise NotImplementedError

    def __iter__(self):
        return iter(f"{i}.{n}" for i, d in enumerate(self.layers) for n in d)

    def __len__(self):
        return sum(len(d) for d in self.layers)


@pytest.mark.parametrize("name", NAMES)
def test_updates_in_place_and_through_views(xp, name, rng):
    make, _ = CASES[name]
    layers = [{"W": dev(rng.normal(size=(3, 2)), xp), "b": dev(rng.normal(size=2), xp)},
              {"W": dev(rng.normal(size=(2, 1)), xp)}]
    view = LayerView(layers)
    before = {k: backend.to_numpy(view[k]).copy() for k in view}
    ids = {k: id(view[k]) for k in view}
    grads = {k: dev(rng.normal(size=before[k].shape), xp) for k in view}
    opt = make()
    opt.update(view, grads)
    opt.update(view, grads)
    assert sorted(view.writes) == sorted(list(view) * 2)
    for k in view:
        assert id(view[k]) == ids[k], f"{name}: {k} was replaced, not updated in place"
        assert not np.array_equal(backend.to_numpy(view[k]), before[k])
    assert set(opt.state) == ({"0.W", "0.b", "1.W"} if name != "SGD" else set())


@pytest.mark.parametrize("name", NAMES)
def test_state_is_lazy_on_the_params_backend_and_dtype(xp, name, rng):
    opt = CASES[name][0]()
    assert opt.state == {}
    p = {"w": backend.to_device(rng.normal(size=4).astype("float32"), xp)}
    opt.update(p, {"w": backend.to_device(rng.normal(size=4).astype("float32"), xp)})
    assert backend.dtype_name(p["w"].dtype) == "float32"
    for slot, value in opt.state.get("w", {}).items():
        if hasattr(value, "dtype"):
            assert backend.dtype_name(value.dtype) == "float32", slot
            assert type(value) is type(p["w"]), slot  # the state lives in the parameters' library
            assert backend.device_name(value) == backend.device_name(p["w"])


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_and_reset(xp, name, rng):
    make, ref = CASES[name]
    gs = [dev(g, xp) for g in GRADS]
    a = make()
    pa = {"w": dev(W0, xp)}
    for g in gs[:2]:
        a.update(pa, {"w": g})
    saved = a.state_dict()
    b = make()
    b.load_state_dict(saved)
    pb = {"w": dev(backend.to_numpy(pa["w"]), xp)}
    a.update(pa, {"w": gs[2]})              # must not change `saved` (copies) ...
    b.update(pb, {"w": gs[2]})
    np.testing.assert_array_equal(backend.to_numpy(pa["w"]), backend.to_numpy(pb["w"]))
    assert b.step_count == 3 and saved["step_count"] == 2
    c = make()
    c.load_state_dict(saved)                # ... so loading it again gives the same third step
    pc = {"w": dev(ref(W0.copy(), GRADS)[1], xp)}
    c.update(pc, {"w": gs[2]})
    np.testing.assert_allclose(backend.to_numpy(pc["w"]), ref(W0.copy(), GRADS)[2], rtol=1e-12)
    a.reset()
    assert a.step_count == 0 and a.state == {}
    pr = {"w": dev(W0, xp)}
    a.update(pr, {"w": gs[0]})
    np.testing.assert_allclose(backend.to_numpy(pr["w"]), ref(W0.copy(), GRADS)[0], rtol=1e-13)
    with pytest.raises(ValueError, match="belongs to"):
        optim.SGD(0.1).load_state_dict(optim.Adam().state_dict())


def test_state_follows_parameter_cast():
    opt = optim.Momentum(0.1)
    p = {"w": np.ones(3, dtype="float32")}
    opt.update(p, {"w": np.ones(3, dtype="float32")})
    p["w"] = p["w"].astype("float64")
    opt.update(p, {"w": np.ones(3)})
    assert opt.state["w"]["velocity"].dtype == np.float64 and p["w"].dtype == np.float64
    p["w"] = np.ones(4)
    with pytest.raises(ValueError, match="reset"):
        opt.update(p, {"w": np.ones(4)})


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("name", NAMES)
def test_validation_names_optimizer_and_key(xp, name):
    opt = CASES[name][0]()
    p = {"W": dev(np.ones((2, 3)), xp), "b": dev(np.ones(3), xp)}
    with pytest.raises(ValueError, match=rf"{name}\.update.*'b'"):
        opt.update(p, {"W": dev(np.ones((2, 3)), xp)})
    with pytest.raises(ValueError, match=rf"{name}\.update.*'extra'"):
        opt.update(p, {"W": dev(np.ones((2, 3)), xp), "b": dev(np.ones(3), xp), "extra": dev(np.ones(3), xp)})
    with pytest.raises(ValueError, match=rf"{name}\.update.*'W'.*\(3, 2\).*\(2, 3\)"):
        opt.update(p, {"W": dev(np.ones((3, 2)), xp), "b": dev(np.ones(3), xp)})
    g32 = backend.to_device(np.ones(3, dtype="float32"), xp)
    with pytest.raises(TypeError, match=rf"{name}\.update.*'b'.*float32"):
        opt.update(p, {"W": dev(np.ones((2, 3)), xp), "b": g32})
    np.testing.assert_array_equal(backend.to_numpy(p["W"]), 1.0)        # nothing was updated by a failed call
    assert opt.step_count == 0
    with pytest.raises(ValueError, match=rf"{name}.*learning rate"):
        CASES[name][0]().__class__(-0.1)


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match="Momentum.*momentum"):
        optim.Momentum(0.1, momentum=1.5)
    with pytest.raises(ValueError, match="Adam.*beta2"):
        optim.Adam(beta2=1.0)
    with pytest.raises(ValueError, match="SGD.*weight_decay"):
        optim.SGD(0.1, weight_decay=-1)
    with pytest.raises(ValueError, match="RMSProp.*max_norm"):
        optim.RMSProp(max_norm=0)
    with pytest.raises(ValueError, match="SGD.*both"):
        optim.SGD(0.1, schedule=optim.constant(0.1))
    opt = optim.SGD(schedule=lambda t: 0.1 - 0.1 * t)      # goes negative at t = 2
    p = {"w": np.zeros(1)}
    opt.update(p, {"w": np.ones(1)})
    opt.update(p, {"w": np.ones(1)})
    with pytest.raises(ValueError, match="SGD.*learning rate"):
        opt.update(p, {"w": np.ones(1)})


def test_repr_shows_hyperparameters():
    want = "Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.1)"
    assert repr(optim.Adam(0.01, weight_decay=0.1)) == want
    assert "schedule=StepDecay" in repr(optim.SGD(schedule=optim.StepDecay(0.1, 10)))
