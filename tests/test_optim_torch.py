"""Cross-check of dlcore.optim against torch.optim (float64, 20 random gradient steps, 1e-10 relative).

Conventions compared (see the docstrings in dlcore/optim/optimizers.py):

- Momentum: lecture Δw ← μΔw − εg, w ← w + Δw; PyTorch v ← μv + g, w ← w − εv. With a constant ε,
  Δw = −εv at every step (induction: true for v = Δw = 0; if Δw = −εv then μΔw − εg = −ε(μv + g)),
  so the weights agree; the test also checks the velocity relation itself.
- Nesterov: Δw ← μΔw − εg, w ← w + μΔw − εg  ==  PyTorch nesterov=True: v ← μv + g, w ← w − ε(g + μv).
- AdaGrad: accumulator starts at 0, eps added after the square root (PyTorch's defaults, lr_decay = 0).
- RMSProp: ρ is PyTorch's alpha; eps after the square root.
- Weight decay: g + λw for all rules but AdamW, whose decay is decoupled (both libraries).
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcore import optim

torch = pytest.importorskip("torch", reason="PyTorch not installed: the cross-check against torch.optim is skipped")

pytestmark = pytest.mark.torch

SHAPES = {"W": (3, 4), "b": (4,)}
STEPS = 20

PAIRS = {
    "SGD": (lambda wd: optim.SGD(0.1, weight_decay=wd),
            lambda ps, wd: torch.optim.SGD(ps, lr=0.1, weight_decay=wd)),
    "Momentum": (lambda wd: optim.Momentum(0.05, momentum=0.9, weight_decay=wd),
                 lambda ps, wd: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=wd)),
    "Nesterov": (lambda wd: optim.Nesterov(0.05, momentum=0.9, weight_decay=wd),
                 lambda ps, wd: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=wd)),
    "AdaGrad": (lambda wd: optim.AdaGrad(0.1, eps=1e-10, weight_decay=wd),
                lambda ps, wd: torch.optim.Adagrad(ps, lr=0.1, eps=1e-10, weight_decay=wd)),
    "RMSProp": (lambda wd: optim.RMSProp(0.01, rho=0.9, eps=1e-8, weight_decay=wd),
                lambda ps, wd: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-8, weight_decay=wd)),
    "Adam": (lambda wd: optim.Adam(0.01, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=wd),
             lambda ps, wd: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd)),
    "AdamW": (lambda wd: optim.AdamW(0.01, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=wd),
              lambda ps, wd: torch.optim.AdamW(ps, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd)),
}


def _drive(name: str, wd: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    ours = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    theirs = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for k, v in ours.items()}
    make_ours, make_theirs = PAIRS[name]
    opt = make_ours(wd)
    topt = make_theirs(list(theirs.values()), wd)
    for step in range(1, STEPS + 1):
        grads = {k: rng.normal(size=s) * rng.uniform(0.1, 3.0) for k, s in SHAPES.items()}
        opt.update(ours, grads)
        for k, t in theirs.items():
            t.grad = torch.tensor(grads[k], dtype=torch.float64)
        topt.step()
        for k in SHAPES:
            np.testing.assert_allclose(ours[k], theirs[k].detach().numpy(), rtol=1e-10, atol=1e-13,
                                       err_msg=f"{name} (weight_decay={wd}) parameter {k!r} after step {step}")
    return opt, topt, theirs


@pytest.mark.parametrize("wd", [0.0, 0.05], ids=["plain", "weight_decay"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_matches_torch_optim(name, wd):
    _drive(name, wd)


def test_momentum_velocity_is_minus_lr_times_torch_buffer():
    opt, topt, theirs = _drive("Momentum", 0.0, seed=3)
    for k, t in theirs.items():
        buf = topt.state[t]["momentum_buffer"].numpy()
        np.testing.assert_allclose(opt.state[k]["velocity"], -0.05 * buf, rtol=1e-10, atol=1e-14)


def test_clip_grad_norm_matches_torch():
    """Same total norm; PyTorch scales by c / (||g|| + 1e-6), we by c / ||g|| exactly, hence rtol 1e-6."""
    rng = np.random.default_rng(1)
    grads = {k: rng.normal(size=s) * 4 for k, s in SHAPES.items()}
    ts = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES.values()]
    for t, g in zip(ts, grads.values(), strict=True):
        t.grad = torch.tensor(g)
    total_t = float(torch.nn.utils.clip_grad_norm_(ts, max_norm=1.0))
    total = optim.clip_grad_norm(grads, 1.0)
    assert total == pytest.approx(total_t, rel=1e-12)
    for t, g in zip(ts, grads.values(), strict=True):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-5)


def test_max_norm_matches_torch_renorm():
    """torch.renorm(W, 2, dim=1, c) renormalises each column W[:, j] (scale c / (norm + 1e-7))."""
    rng = np.random.default_rng(2)
    w = rng.normal(size=(6, 5)) * 2
    params = {"W": w.copy()}
    optim.apply_max_norm(params, 1.5)
    expected = torch.renorm(torch.tensor(w), p=2, dim=1, maxnorm=1.5).numpy()
    np.testing.assert_allclose(params["W"], expected, rtol=1e-6)


def test_schedules_match_torch_lr_schedulers():
    p = [torch.zeros(1, requires_grad=True)]
    cases = [
        (optim.StepDecay(0.1, step_size=4, gamma=0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 4, gamma=0.5)),
        (optim.ExponentialDecay(0.1, gamma=0.9), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)),
        (optim.CosineDecay(0.1, total_steps=15, min_lr=0.01),
         lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=15, eta_min=0.01)),
    ]
    for ours, make in cases:
        topt = torch.optim.SGD(p, lr=0.1)
        sched = make(topt)
        for t in range(16):
            assert ours(t) == pytest.approx(topt.param_groups[0]["lr"], rel=1e-10, abs=1e-15), (ours, t)
            topt.step()
            sched.step()
