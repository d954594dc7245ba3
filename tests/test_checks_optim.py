"""Chapter 3's check kinds (grader/trusted/plans/optim.py, training.py and their records), without a kernel.

Each kind accepts a correct student implementation over several seeds and options, and rejects each
prepared mistake with a message that names the cause.
"""

from __future__ import annotations

import numpy as np
import pytest

from grader import checks, kinds

# --------------------------------------------------------------------------- correct student code (plain NumPy)


class SGD:
    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]


class Momentum:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, {}

    def velocity(self, key, g):
        v = self.v.get(key, np.zeros_like(g))
        self.v[key] = self.momentum * v - self.lr * g
        return self.v[key]

    def update(self, params, grads):
        for key in params:
            params[key] += self.velocity(key, grads[key])


class Nesterov(Momentum):
    def update(self, params, grads):
        for key in params:
            v = self.velocity(key, grads[key])
            params[key] += self.momentum * v - self.lr * grads[key]


class AdaGrad:
    def __init__(self, lr=0.01, eps=1e-10):
        self.lr, self.eps, self.h = lr, eps, {}

    def denominator(self, h):
        return np.sqrt(h) + self.eps

    def accumulate(self, key, g):
        self.h[key] = self.h.get(key, 0.0) + g * g
        return self.h[key]

    def update(self, params, grads):
        for key in params:
            h = self.accumulate(key, grads[key])
            params[key] -= self.lr * grads[key] / self.denominator(h)


class RMSProp:
    def __init__(self, lr=0.01, rho=0.99, eps=1e-8):
        self.lr, self.rho, self.eps, self.h = lr, rho, eps, {}

    def update(self, params, grads):
        for key in params:
            g = grads[key]
            self.h[key] = self.rho * self.h.get(key, 0.0) + (1 - self.rho) * g * g
            params[key] -= self.lr * g / (np.sqrt(self.h[key]) + self.eps)


class Adam:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m, self.v, self.t = {}, {}, 0

    def corrected(self, m, v):
        return m / (1 - self.beta1 ** self.t), v / (1 - self.beta2 ** self.t)

    def update(self, params, grads):
        self.t += 1
        for key in params:
            g = grads[key]
            self.m[key] = self.beta1 * self.m.get(key, 0.0) + (1 - self.beta1) * g
            self.v[key] = self.beta2 * self.v.get(key, 0.0) + (1 - self.beta2) * g * g
            m_hat, v_hat = self.corrected(self.m[key], self.v[key])
            params[key] -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class RegularizedSGD:
    def __init__(self, lr=0.01, weight_decay=0.0, max_norm=None):
        self.lr, self.weight_decay, self.max_norm = lr, weight_decay, max_norm

    def norms(self, w):
        return np.sqrt(np.sum(w * w, axis=0, keepdims=True))

    def update(self, params, grads):
        for key in params:
            w = params[key]
            w -= self.lr * (grads[key] + self.weight_decay * w)
            if self.max_norm is not None and w.ndim >= 2:
                w *= self.max_norm / np.maximum(self.norms(w), self.max_norm)


def linear_decay(t, lr0, alpha, min_lr=0.0):
    return max(lr0 - alpha * t, min_lr)


def step_decay(t, lr0, step_size, gamma=0.1):
    return lr0 * gamma ** (t // step_size)


def xavier_normal(shape, rng=None):
    return np.random.default_rng(rng).normal(0.0, np.sqrt(2.0 / (shape[0] + shape[1])), size=shape)


def he_normal(shape, rng=None):
    return np.random.default_rng(rng).normal(0.0, np.sqrt(2.0 / shape[0]), size=shape)


def standardize(x, eps=1e-8):
    return (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)


def zca_whiten(x, eps=0.1):
    xc = x - x.mean(axis=0)
    lam, u = np.linalg.eigh(xc.T @ xc / x.shape[0])
    return xc @ (u / np.sqrt(lam + eps)) @ u.T


class BatchNorm:
    def __init__(self, num_features, eps=1e-5, momentum=0.9):
        self.params = {"gamma": np.ones(num_features), "beta": np.zeros(num_features)}
        self.grads = {}
        self.eps, self.momentum = eps, momentum
        self.running_mean, self.running_var = np.zeros(num_features), np.ones(num_features)

    def forward(self, x, train=True):
        self.train = train
        if train:
            m, mu, var = x.shape[0], x.mean(axis=0), x.var(axis=0)
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var * m / (m - 1)
        else:
            mu, var = self.running_mean, self.running_var
        self.std = np.sqrt(var + self.eps)
        self.xhat = (x - mu) / self.std
        return self.params["gamma"] * self.xhat + self.params["beta"]

    def input_gradient(self, dxhat):
        m = dxhat.shape[0]
        return (m * dxhat - dxhat.sum(axis=0) - self.xhat * np.sum(dxhat * self.xhat, axis=0)) / (m * self.std)

    def backward(self, dout):
        self.grads["gamma"] = np.sum(dout * self.xhat, axis=0)
        self.grads["beta"] = np.sum(dout, axis=0)
        dxhat = dout * self.params["gamma"]
        return self.input_gradient(dxhat) if self.train else dxhat / self.std


class Dropout:
    def __init__(self, p=0.5, rng=None):
        self.p, self.rng, self.mask = p, np.random.default_rng(rng), None

    def draw(self, shape):
        return self.rng.random(shape) >= self.p

    def forward(self, x, train=True):
        if not train:
            self.mask = None
            return x
        self.mask = self.draw(x.shape) / (1.0 - self.p)
        return x * self.mask

    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask


# --------------------------------------------------------------------------- prepared mistakes


class MomentumSignFlipped(Momentum):
    """The lecture's Δw ← μΔw − εg with the sign of the gradient term flipped (the steps go uphill)."""

    def velocity(self, key, g):
        v = self.v.get(key, np.zeros_like(g))
        self.v[key] = self.momentum * v + self.lr * g
        return self.v[key]


class MomentumForgets(Momentum):
    def velocity(self, key, g):
        return -self.lr * g


class NesterovIsMomentum(Momentum):
    pass


class AdaGradNoAccumulation(AdaGrad):
    def accumulate(self, key, g):
        return g * g


class AdaGradEpsInside(AdaGrad):
    def denominator(self, h):
        return np.sqrt(h + self.eps)


class RMSPropEpsInside(RMSProp):
    def update(self, params, grads):
        for key in params:
            g = grads[key]
            self.h[key] = self.rho * self.h.get(key, 0.0) + (1 - self.rho) * g * g
            params[key] -= self.lr * g / np.sqrt(self.h[key] + self.eps)


class AdamNoBiasCorrection(Adam):
    def corrected(self, m, v):
        return m, v


class AdamEpsInside(Adam):
    def update(self, params, grads):
        self.t += 1
        for key in params:
            g = grads[key]
            self.m[key] = self.beta1 * self.m.get(key, 0.0) + (1 - self.beta1) * g
            self.v[key] = self.beta2 * self.v.get(key, 0.0) + (1 - self.beta2) * g * g
            m_hat, v_hat = self.corrected(self.m[key], self.v[key])
            params[key] -= self.lr * m_hat / np.sqrt(v_hat + self.eps)


class AdamNewArrays(Adam):
    """Right values, but the dict gets new arrays: the network's own arrays never change."""

    def update(self, params, grads):
        self.t += 1
        for key in params:
            g = grads[key]
            self.m[key] = self.beta1 * self.m.get(key, 0.0) + (1 - self.beta1) * g
            self.v[key] = self.beta2 * self.v.get(key, 0.0) + (1 - self.beta2) * g * g
            m_hat, v_hat = self.corrected(self.m[key], self.v[key])
            params[key] = params[key] - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamFloat32(Adam):
    def update(self, params, grads):
        super().update(params, grads)
        for key in params:
            params[key] = params[key].astype(np.float32)


class DecaySignFlipped(RegularizedSGD):
    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * (grads[key] - self.weight_decay * params[key])


class MaxNormRows(RegularizedSGD):
    def norms(self, w):
        return np.sqrt(np.sum(w * w, axis=1, keepdims=True))


class DecayModifiesGrads(RegularizedSGD):
    def update(self, params, grads):
        for key in params:
            grads[key] += self.weight_decay * params[key]
            params[key] -= self.lr * grads[key]


class IgnoresRegularization(RegularizedSGD):
    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]


def linear_decay_no_floor(t, lr0, alpha, min_lr=0.0):
    return lr0 - alpha * t


def step_decay_not_floored(t, lr0, step_size, gamma=0.1):
    return lr0 * gamma ** (t / step_size)


def xavier_lecun(shape, rng=None):
    return np.random.default_rng(rng).normal(0.0, np.sqrt(1.0 / shape[0]), size=shape)


def he_uniform_instead(shape, rng=None):
    a = np.sqrt(6.0 / shape[0])
    return np.random.default_rng(rng).uniform(-a, a, size=shape)


def he_global_state(shape, rng=None):
    return np.random.normal(0.0, np.sqrt(2.0 / shape[0]), size=shape)  # noqa: NPY002 - the mistake under test


def standardize_no_eps_in_sqrt(x, eps=1e-8):
    return (x - x.mean(axis=0)) / (x.std(axis=0) + eps)


def zca_pca_only(x, eps=0.1):
    xc = x - x.mean(axis=0)
    lam, u = np.linalg.eigh(xc.T @ xc / x.shape[0])
    return xc @ (u / np.sqrt(lam + eps))


def zca_n_minus_1(x, eps=0.1):
    xc = x - x.mean(axis=0)
    lam, u = np.linalg.eigh(xc.T @ xc / (x.shape[0] - 1))
    return xc @ (u / np.sqrt(lam + eps)) @ u.T


class BatchNormNoMeanTerm(BatchNorm):
    def input_gradient(self, dxhat):
        return (dxhat - self.xhat * np.mean(dxhat * self.xhat, axis=0)) / self.std


class BatchNormConstantStats(BatchNorm):
    def input_gradient(self, dxhat):
        return dxhat / self.std


class BatchNormBiasedRunningVar(BatchNorm):
    def forward(self, x, train=True):
        if train:
            old = self.running_var.copy()
            y = super().forward(x, train)
            self.running_var = self.momentum * old + (1 - self.momentum) * x.var(axis=0)
            return y
        return super().forward(x, train)


class BatchNormEvalUsesBatch(BatchNorm):
    def forward(self, x, train=True):
        mean, var = self.running_mean.copy(), self.running_var.copy()
        y = super().forward(x, True)
        if not train:
            self.running_mean, self.running_var, self.train = mean, var, False
        return y


class DropoutNotInverted(Dropout):
    def forward(self, x, train=True):
        if not train:
            self.mask = None
            return x
        self.mask = self.draw(x.shape).astype(float)
        return x * self.mask


class DropoutKeepsP(Dropout):
    def draw(self, shape):
        return self.rng.random(shape) < self.p


class DropoutOtherMask(Dropout):
    """A valid mask from another draw (u < 1 − p): accepted."""

    def draw(self, shape):
        return self.rng.random(shape) < 1 - self.p


class DropoutNewMaskInBackward(Dropout):
    def backward(self, dout):
        return dout * self.draw(dout.shape) / (1 - self.p)


class DropoutScalesInEval(Dropout):
    def forward(self, x, train=True):
        y = super().forward(x, train)
        return y if train else x * (1 - self.p)


# --------------------------------------------------------------------------- helpers


def passes(kind, student, reference, **options):
    checks_fn = getattr(checks, f"check_{kind}")
    checks_fn(student, reference, **options)


def fails(kind, student, reference, *words, **options):
    checks_fn = getattr(checks, f"check_{kind}")
    with pytest.raises(AssertionError) as info:
        checks_fn(student, reference, **options)
    message = str(info.value)
    for w in words:
        assert w in message, f"{w!r} not in:\n{message}"
    return message


def test_kinds_are_registered():
    for kind in ("optimizer", "schedule", "initializer", "transform", "batchnorm", "dropout", "training"):
        assert kinds.find(kind) is not None, kind


# --------------------------------------------------------------------------- optimizers


OPTIMIZERS = [(SGD, "SGD", {"lr": 0.1}), (Momentum, "Momentum", {"lr": 0.1, "momentum": 0.9}),
              (Nesterov, "Nesterov", {"lr": 0.05, "momentum": 0.8}), (AdaGrad, "AdaGrad", {"lr": 0.1}),
              (RMSProp, "RMSProp", {"lr": 0.01, "rho": 0.9}), (Adam, "Adam", {"lr": 0.01}),
              (Adam, "Adam", {"lr": 0.001, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6}),
              (RegularizedSGD, "SGD", {"lr": 0.1, "weight_decay": 0.05}),
              (RegularizedSGD, "SGD", {"lr": 0.1, "max_norm": 1.5}),
              (RegularizedSGD, "SGD", {"lr": 0.2, "weight_decay": 0.01, "max_norm": 1.0})]


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize(("student", "reference", "kwargs"), OPTIMIZERS)
def test_correct_optimizers_pass(student, reference, kwargs, seed, capsys):
    passes("optimizer", student, reference, kwargs=kwargs, steps=6, seed=seed,
           shapes=[[4, 3], [3], [5, 2]] if seed == 7 else ((3, 4), (4,), (2, 3)))
    assert capsys.readouterr().out.startswith("✔")


def test_the_replay_of_each_rule_agrees_with_dlcore():
    from grader.trusted.plans.optim import plan_optimizer
    for _, reference, kwargs in OPTIMIZERS:
        plan = plan_optimizer(reference, kwargs=kwargs, steps=4, seed=3)
        for got, want in zip(plan.info["replay"], plan.expected["trajectory"], strict=True):
            for k in want:
                np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("student", "reference", "kwargs", "words"), [
    (MomentumSignFlipped, "Momentum", {"lr": 0.1, "momentum": 0.9},
     ["after update 1", "sign of the gradient term is flipped", "Δw ← μ Δw − ε g"]),
    (MomentumForgets, "Momentum", {"lr": 0.1, "momentum": 0.9}, ["after update 2", "velocity Δw is not kept"]),
    (NesterovIsMomentum, "Nesterov", {"lr": 0.1, "momentum": 0.9}, ["update 1", "classical momentum"]),
    (AdaGradNoAccumulation, "AdaGrad", {"lr": 0.1}, ["after update 2", "h is not accumulated"]),
    (AdaGradEpsInside, "AdaGrad", {"lr": 0.1}, ["eps is inside the square root"]),
    (RMSPropEpsInside, "RMSProp", {"lr": 0.01}, ["update 1", "eps is inside the square root"]),
    (AdamNoBiasCorrection, "Adam", {"lr": 0.01},
     ["after update 1", "the bias correction is missing", "m̂ = m / (1 − β1ᵗ)"]),
    (AdamEpsInside, "Adam", {"lr": 0.01}, ["update 1", "eps is inside the square root"]),
    (AdamNewArrays, "Adam", {"lr": 0.01}, ["in NEW arrays", "in place"]),
    (AdamFloat32, "Adam", {"lr": 0.01}, ["dtype float32"]),
    (DecaySignFlipped, "SGD", {"lr": 0.1, "weight_decay": 0.05}, ["weight decay has the wrong sign"]),
    (MaxNormRows, "SGD", {"lr": 0.1, "max_norm": 1.5}, ["norms were taken over rows"]),
    (DecayModifiesGrads, "SGD", {"lr": 0.1, "weight_decay": 0.05}, ["modified grads"]),
    (IgnoresRegularization, "SGD", {"lr": 0.1, "max_norm": 1.5}, ["neither the weight decay nor the max-norm"]),
])
def test_optimizer_mistakes_are_named(student, reference, kwargs, words):
    for seed in (0, 4):
        fails("optimizer", student, reference, *words, kwargs=kwargs, steps=5, seed=seed)


def test_optimizer_message_shows_the_inputs_at_the_worst_entry():
    msg = fails("optimizer", AdamNoBiasCorrection, "Adam", "w before this update =", "g = ", kwargs={"lr": 0.01})
    assert "worst relative error" in msg


def test_optimizer_errors_and_warnings_are_reported():
    class Broken(SGD):
        def update(self, params, grads):
            raise NotImplementedError

    class Overflows(SGD):
        def update(self, params, grads):
            for key in params:
                params[key] -= self.lr * np.exp(grads[key] * 1e4) * 0

    fails("optimizer", Broken, "SGD", "update raised NotImplementedError", "not implemented yet", kwargs={"lr": 0.1})
    fails("optimizer", Overflows, "SGD", "NumPy warning", "overflow", kwargs={"lr": 0.1})


def test_optimizer_delegation_to_dlcore_scores_zero():
    from dlcore.optim import Adam as DlAdam
    fails("optimizer", DlAdam, "Adam", "uses dlcore's reference implementation", kwargs={"lr": 0.01})


def test_unknown_optimizer_reference_is_a_test_bug():
    with pytest.raises(ValueError, match="no reference called"):
        checks.check_optimizer(SGD, "Adamax", kwargs={"lr": 0.1})


# --------------------------------------------------------------------------- schedules and initializers


@pytest.mark.parametrize(("fn", "reference", "kwargs"), [
    (linear_decay, "LinearDecay", {"lr0": 0.1, "alpha": 0.004, "min_lr": 0.02}),
    (linear_decay, "LinearDecay", {"lr0": 1.0, "alpha": 0.1}),
    (step_decay, "StepDecay", {"lr0": 0.1, "step_size": 5, "gamma": 0.5}),
    (step_decay, "StepDecay", {"lr0": 0.3, "step_size": 3}),
])
def test_schedules_pass(fn, reference, kwargs):
    passes("schedule", fn, reference, kwargs=kwargs, steps=25)


def test_schedule_mistakes_are_named():
    fails("schedule", linear_decay_no_floor, "LinearDecay", "linear_decay_no_floor(21", "floor is missing",
          kwargs={"lr0": 0.1, "alpha": 0.004, "min_lr": 0.02})
    fails("schedule", step_decay_not_floored, "StepDecay", "not floored", kwargs={"lr0": 0.1, "step_size": 5,
                                                                                  "gamma": 0.5})


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_initializers_pass(seed):
    passes("initializer", xavier_normal, "xavier_normal", shapes=((500, 200), (300, 400)), seed=seed)
    passes("initializer", he_normal, "he_normal", shapes=((500, 200),), seed=seed)


def test_initializer_mistakes_are_named():
    fails("initializer", xavier_lecun, "xavier_normal", "standard deviation", "LeCun")
    fails("initializer", xavier_normal, "he_normal", "Xavier's")
    fails("initializer", he_uniform_instead, "he_normal", "57.7 %")
    fails("initializer", he_global_state, "he_normal", "same seed gave different weights")


# --------------------------------------------------------------------------- whitening


@pytest.mark.parametrize("seed", [0, 2])
def test_transforms_pass(seed):
    passes("transform", standardize, "standardize", n=200, seed=seed)
    passes("transform", zca_whiten, "zca_whiten", kwargs={"eps": 0.1}, n=200, seed=seed)
    passes("transform", zca_whiten, "zca_whiten", kwargs={"eps": 0.01}, n=300, seed=seed)


def test_transform_mistakes_are_named():
    fails("transform", standardize_no_eps_in_sqrt, "standardize", "eps is added to σ", kwargs={"eps": 0.01})
    fails("transform", zca_pca_only, "zca_whiten", "PCA whitening", kwargs={"eps": 0.1})
    fails("transform", zca_n_minus_1, "zca_whiten", "N − 1", kwargs={"eps": 0.1})

    def in_place(x, eps=1e-8):
        x -= x.mean(axis=0)
        return x / np.sqrt(x.var(axis=0) + eps)

    fails("transform", in_place, "standardize", "modified x in place")


# --------------------------------------------------------------------------- BatchNorm and Dropout


@pytest.mark.parametrize(("args", "kwargs", "shape", "seed"), [
    ((5,), None, (8, 5), 0), ((3,), {"momentum": 0.8, "eps": 1e-3}, (16, 3), 1), ((4,), None, (2, 4), 5)])
def test_batchnorm_passes(args, kwargs, shape, seed):
    passes("batchnorm", BatchNorm, "BatchNorm", args=args, kwargs=kwargs, shape=shape, steps=3, seed=seed)


@pytest.mark.parametrize(("student", "words"), [
    (BatchNormNoMeanTerm, ["dL/dx", "mean term is missing", "training step 1"]),
    (BatchNormConstantStats, ["treated as constants"]),
    (BatchNormBiasedRunningVar, ["running_var", "m/(m − 1)"]),
    (BatchNormEvalUsesBatch, ["evaluation", "used the batch statistics"]),
])
def test_batchnorm_mistakes_are_named(student, words):
    fails("batchnorm", student, "BatchNorm", *words, args=(5,), shape=(8, 5), seed=2)


@pytest.mark.parametrize(("p", "seed"), [(0.3, 0), (0.5, 1), (0.2, 9)])
def test_dropout_passes(p, seed, capsys):
    passes("dropout", Dropout, "Dropout", p=p, seed=seed)
    passes("dropout", DropoutOtherMask, "Dropout", p=p, seed=seed)
    assert "valid dropout mask" in capsys.readouterr().out


@pytest.mark.parametrize(("student", "words"), [
    (DropoutNotInverted, ["not scaled", "inverted dropout divides"]),
    (DropoutKeepsP, ["70.00%", "probability to DROP"]),
    (DropoutNewMaskInBackward, ["SAME mask"]),
    (DropoutScalesInEval, ["train=False", "identity"]),
])
def test_dropout_mistakes_are_named(student, words):
    msg = fails("dropout", student, "Dropout", *[w for w in words if "%" not in w], p=0.3, seed=0)
    if student is DropoutKeepsP:
        assert "of the units were kept, expected about 70%" in msg and "probability to DROP" in msg


# --------------------------------------------------------------------------- the closing experiment (fast part)


def test_training_check_judges_scores_against_labels_it_keeps():
    from grader.trusted.plans.training import judge_training, plan_training
    plan = plan_training("digits_mlp", kwargs={"epochs": 3}, seed=0)
    assert "t_test" not in plan.inputs and "t_test" in plan.expected
    t = plan.expected["t_test"]
    perfect = np.eye(10)[t]
    ok = judge_training(plan, {"origin": {"name": "train_mlp"}, "error": None, "warnings": [], "scores": perfect,
                               "history": [2.0, 1.0]})
    assert ok.ok and "100.00%" in ok.summary
    rng = np.random.default_rng(0)
    bad = judge_training(plan, {"origin": {"name": "train_mlp"}, "error": None, "warnings": [],
                                "scores": rng.standard_normal(perfect.shape), "history": [2.3, 2.2]})
    assert not bad.ok and "below the required 97%" in bad.message
    wrong_shape = judge_training(plan, {"origin": {"name": "train_mlp"}, "error": None, "warnings": [],
                                        "scores": perfect[:, :9], "history": [1.0]})
    assert not wrong_shape.ok and "scores of shape" in wrong_shape.message


def _identical(a, b) -> bool:
    """Exact equality of plain data: the same types, arrays of the same dtype, shape and values."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_identical, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def test_plans_and_records_serialise():
    import json

    from grader.kernel import wire
    from grader.trusted.plans.optim import plan_optimizer
    plan = plan_optimizer("Adam", kwargs={"lr": 0.01}, steps=2)
    for part in (plan.inputs, plan.expected, plan.info):
        assert _identical(wire.decode(json.loads(json.dumps(wire.encode(part), allow_nan=False))), part)


def test_batchnorm_reference_bug_cannot_decide(monkeypatch, capsys):
    """A student who agrees with the numerical gradient passes (with a note) even if dlcore's dx were wrong."""
    from dlcore.nn import normalization

    original = normalization.BatchNorm.backward

    def wrong_backward(self, dy):
        return 2.0 * original(self, dy) if self.train else original(self, dy)

    monkeypatch.setattr(normalization.BatchNorm, "backward", wrong_backward)
    checks.check_batchnorm(BatchNorm, "BatchNorm", args=(5,), shape=(8, 5), seed=0)
    assert "disagrees with the numerical gradient; please tell the instructor" in capsys.readouterr().out
    fails("batchnorm", BatchNormNoMeanTerm, "BatchNorm", "mean term is missing", args=(5,), shape=(8, 5), seed=0)


def test_dropout_float32_is_refused():
    class Float32Dropout(Dropout):
        def forward(self, x, train=True):
            return super().forward(x, train).astype(np.float32)

    fails("dropout", Float32Dropout, "Dropout", "float32", p=0.3)


def test_calls_into_dlcore_are_seen_in_the_kernel():
    """Written in the notebook, but handing the work to dlcore's reference: zero, with the call named."""
    import dlcore.optim as optim
    from dlcore.nn import BatchNorm as DlBatchNorm
    from dlcore.nn import Dropout as DlDropout
    from dlcore.nn import init

    class WrapsAdam:
        def __init__(self, **kwargs):
            self.inner = optim.Adam(**kwargs)

        def update(self, params, grads):
            self.inner.update(params, grads)

    class WrapsMaxNorm(RegularizedSGD):
        def update(self, params, grads):
            SGD(self.lr).update(params, grads)
            optim.apply_max_norm(params, self.max_norm)

    class WrapsBatchNorm(BatchNorm):
        def __init__(self, num_features, eps=1e-5, momentum=0.9):
            super().__init__(num_features, eps, momentum)
            self.inner = DlBatchNorm(num_features, eps, momentum, dtype="float64")

        def forward(self, x, train=True):
            self.inner.params = self.params
            return self.inner.forward(x, train)

        def backward(self, dout):
            dx = self.inner.backward(dout)
            self.grads = self.inner.grads
            return dx

    class WrapsDropout(Dropout):
        def __init__(self, p=0.5, rng=None):
            self.inner = DlDropout(p, rng)

        def forward(self, x, train=True):
            return self.inner.forward(x, train)

        def backward(self, dout):
            return self.inner.backward(dout)

    def wraps_xavier(shape, rng=None):
        return init.xavier_normal(shape, rng, dtype="float64")

    def wraps_linear(t, lr0, alpha, min_lr=0.0):
        return optim.LinearDecay(lr0, alpha, min_lr)(t)

    fails("optimizer", WrapsAdam, "Adam", "calls dlcore's Adam", kwargs={"lr": 0.01})
    fails("optimizer", WrapsMaxNorm, "SGD", "calls dlcore's apply_max_norm", kwargs={"lr": 0.1, "max_norm": 1.5})
    fails("batchnorm", WrapsBatchNorm, "BatchNorm", "calls dlcore's BatchNorm")
    fails("dropout", WrapsDropout, "Dropout", "calls dlcore's Dropout")
    fails("initializer", wraps_xavier, "xavier_normal", "calls dlcore's xavier_normal")
    fails("schedule", wraps_linear, "LinearDecay", "calls dlcore's LinearDecay", kwargs={"lr0": 0.1, "alpha": 0.01})
