"""Plans and judges of chapter 3's training-technique checks (trusted side).

check_batchnorm(BatchNorm, "BatchNorm", args=(5,), shape=(8, 5), steps=3, seed=0)
    Training steps on shifted, scaled batches (forward, backward, running statistics after each),
    then an evaluation step, against dlcore's BatchNorm in float64; the input gradient is also
    compared with central differences of the reference's training forward.
check_dropout(Dropout, "Dropout", p=0.3, shape=(100, 200), seed=0)
    Inverted dropout with a seeded layer: the reference's mask (u ≥ p with u = rng.random(shape)) is
    accepted exactly; another valid mask is accepted by its structure (y ∈ {0, x / (1 − p)}, the share
    kept, the same mask in backward); evaluation is the identity.
check_transform(student_fn, "zca_whiten", kwargs={"eps": 0.1}, n=300, seed=0)
    Standardisation or ZCA whitening of digits drawn by the plan.
check_training(train_mlp, "digits_mlp", kwargs={...}, lr=0.1, seed=0, minimum=0.97)
    The closing experiment: the student's training function on a digits split drawn here; the kernel
    gets the test inputs, the accuracy is computed here from the test labels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlcore.data import load_digits
from dlcore.gradcheck import numerical_gradient, relative_error
from dlcore.nn import BatchNorm, Dropout
from grader.kinds import Plan
from grader.trusted.messages import Verdict, compare, incomplete
from grader.trusted.plans.optim import _args, _delegated, _name, _raised, with_cause

# --------------------------------------------------------------------------- BatchNorm

_BN_FORMULAS = ("training: μ = mean(x), σ² = mean((x − μ)²) over the batch, x̂ = (x − μ)/√(σ² + ε), y = γ x̂ + β;\n"
                "  backward: dγ = Σ dy x̂, dβ = Σ dy, dx = (m dx̂ − Σ dx̂ − x̂ Σ(dx̂ x̂)) / (m √(σ² + ε)) with dx̂ = γ dy;\n"
                "  running_mean ← momentum · running_mean + (1 − momentum) μ, "
                "running_var ← momentum · running_var + (1 − momentum) σ² m/(m − 1)")


def _bn_train(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> tuple:
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    std = np.sqrt(var + eps)
    xhat = (x - mu) / std
    return gamma * xhat + beta, xhat, std, mu, var


def plan_batchnorm(reference: str, *, args: Any = (5,), kwargs: dict | None = None, shape: Any = (8, 5),
                   steps: int = 3, seed: int = 0) -> Plan:
    """``Student(*args, **kwargs)`` against dlcore's BatchNorm: ``steps`` training steps, then evaluation."""
    if reference != "BatchNorm":
        raise ValueError(f"grader: check_batchnorm has no reference called {reference!r}")
    kwargs = dict(kwargs or {})
    shape = tuple(int(n) for n in shape)
    rng = np.random.default_rng(seed)
    d = shape[1]
    params = {"gamma": 1.0 + 0.5 * rng.standard_normal(d), "beta": 0.5 * rng.standard_normal(d)}
    offset, spread = 2.0 * rng.standard_normal(d), np.exp(rng.uniform(-1, 1, d))
    xs = [offset + spread * rng.standard_normal(shape) for _ in range(int(steps))]
    dys = [rng.standard_normal(shape) for _ in range(int(steps))]
    x_eval = offset + spread * rng.standard_normal((max(shape[0] // 2, 2), d))
    dy_eval = rng.standard_normal(x_eval.shape)
    ref = BatchNorm(*args, **kwargs, dtype="float64")
    ref.params["gamma"], ref.params["beta"] = params["gamma"].copy(), params["beta"].copy()
    eps, mom = ref.eps, ref.momentum
    exp_steps, info_steps = [], []
    for x, dy in zip(xs, dys, strict=True):
        rm_before, rv_before = np.array(ref.running_mean), np.array(ref.running_var)
        exp_steps.append(_reference_step(ref, x, dy, True))
        _, xhat, std, mu, var = _bn_train(x, params["gamma"], params["beta"], eps)
        m = x.shape[0]
        dxhat = dy * params["gamma"]
        info_steps.append({
            "dx_variants": [
                ((dxhat - (xhat * dxhat).mean(axis=0) * xhat) / std,
                 "the mean term is missing: subtract Σ dx̂ / m (the gradient through μ), "
                 "dx = (m dx̂ − Σ dx̂ − x̂ Σ dx̂ x̂)/(m √(σ²+ε))"),
                ((dxhat - dxhat.mean(axis=0)) / std,
                 "the variance term is missing: subtract x̂ Σ(dx̂ x̂) / m (the gradient through σ²)"),
                (dxhat / std, "the batch statistics were treated as constants (dx = γ dy / √(σ² + ε)); in training, "
                              "μ and σ² depend on x, which adds −Σ dx̂ and −x̂ Σ(dx̂ x̂)"),
                ((m * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0)) / std,
                 "the factor 1/m is missing: dx = (m dx̂ − Σ dx̂ − x̂ Σ dx̂ x̂) / (m √(σ² + ε))"),
            ],
            "running_var": [
                (mom * rv_before + (1 - mom) * var, "the running variance uses the biased σ²: multiply the "
                                                    "batch variance by m/(m − 1) (unbiased) for the running value"),
                ((1 - mom) * rv_before + mom * var * m / (m - 1), "the momentum is applied the wrong way round: "
                                                                  "keep momentum of the OLD value"),
            ],
            "running_mean": [((1 - mom) * rm_before + mom * mu,
                               "the momentum is applied the wrong way round: "
                               "running_mean ← momentum · running_mean + (1 − momentum) μ"),
                              (mu, "the running mean is replaced by the batch mean instead of averaged")],
            "numeric": _numeric(x, dy, params, eps),
        })
    expected = {"steps": exp_steps, "eval": _reference_step(ref, x_eval, dy_eval, False)}
    inputs = {"args": list(args), "kwargs": kwargs, "params": params, "xs": xs, "dys": dys, "x_eval": x_eval,
              "dy_eval": dy_eval, "trace": ["BatchNorm"]}
    batch_y = _bn_train(x_eval, params["gamma"], params["beta"], eps)[0]
    return Plan("batchnorm", reference, inputs=inputs, expected=expected,
                info={"steps": info_steps, "eval_batch_forward": batch_y})


def _reference_step(ref: Any, x: np.ndarray, dy: np.ndarray, train: bool) -> dict:
    """dlcore's BatchNorm: forward(x, train), backward(dy), its gradients and running statistics after them."""
    step = {"forward": np.array(ref.forward(x.copy(), train=train)), "backward": np.array(ref.backward(dy.copy()))}
    return {**step, **{k: np.array(ref.grads[k]) for k in ("gamma", "beta")},
            "running_mean": np.array(ref.running_mean), "running_var": np.array(ref.running_var)}


def _numeric(x: np.ndarray, dy: np.ndarray, params: dict, eps: float) -> dict:
    """Central differences of L = Σ y ⊙ dy through the training forward, for dx, dγ and dβ (computed here)."""
    x, gamma, beta = x.copy(), params["gamma"].copy(), params["beta"].copy()

    def loss() -> float:
        return float(np.sum(_bn_train(x, gamma, beta, eps)[0] * dy))

    return {key: numerical_gradient(loss, v) for key, v in (("backward", x), ("gamma", gamma), ("beta", beta))}


def _against_numeric(label: str, got: Any, numeric: np.ndarray, problem: str | None, notes: list) -> str | None:
    """The reference's verdict ``problem`` reconciled with the numerical gradient (a reference bug never decides)."""
    if not isinstance(got, np.ndarray) or got.shape != numeric.shape:
        return problem
    scale = 1.0 + float(np.max(np.abs(numeric)))
    num_ok = _rel(got, numeric) < 1e-5 or float(np.max(np.abs(got - numeric))) <= 1e-7 * scale
    if problem and num_ok:
        notes.append(f"dlcore's reference {label} disagrees with the numerical gradient; please tell the instructor "
                     "(your result was accepted)")
        return None
    if not problem and not num_ok:
        return (f"{label} matches dlcore's reference but not the numerical gradient (relative error "
                f"{_rel(got, numeric):.1e}): this points at a bug in the reference or the checker; please tell the "
                "instructor")
    return problem


def _rel(a: Any, b: np.ndarray) -> float:
    """dlcore.gradcheck's worst relative error; inf when ``a`` is not an array of b's shape."""
    return relative_error(a, b)[0] if isinstance(a, np.ndarray) and a.shape == np.shape(b) else math.inf


def _match(value: Any, variants: list) -> str | None:
    """The explanation of the first (result of a known mistake, explanation) that ``value`` reproduces."""
    return next((why for v, why in variants if _rel(value, v) < 1e-6), None)


def judge_batchnorm(plan: Plan, record: dict) -> Verdict:
    name = _name(record, "BatchNorm")
    if bad := _delegated(record, "BatchNorm"):
        return bad
    args = _args(args=plan.inputs["args"], kwargs=plan.inputs["kwargs"])
    if (record.get("build") or {}).get("error"):
        return Verdict(False, message=f"{name}({args}): {record['build']['error']}")
    shape = plan.inputs["xs"][0].shape
    steps = record.get("steps") or []
    notes: list[str] = []

    def fail(where: str, problem: str) -> Verdict:
        body = problem.replace("\n", "\n  ")
        formula = "" if " raised " in problem else f"\n  formula: {_BN_FORMULAS}"
        return Verdict(False, message=f"{name}({args}) does not match dlcore's BatchNorm ({where}, x of shape "
                                      f"{shape}):\n- {body}{formula}")

    for s, (want, got) in enumerate(zip(plan.expected["steps"], steps, strict=False)):
        info = plan.info["steps"][s]
        where = f"training step {s + 1} of {len(plan.expected['steps'])}"
        fwd, bwd, grads = got.get("forward") or {}, got.get("backward") or {}, got.get("grads") or {}
        if p := _raised("forward(x, train=True)", fwd):
            return fail(where, p)
        if p := compare("the output of forward(x, train=True)", fwd.get("value"), want["forward"],
                        expect_dtype="float64"):
            return fail(where, p + ("\n  note: in training, normalise with the statistics of THIS batch" if s else ""))
        for stat in ("running_mean", "running_var"):
            if p := compare(f"self.{stat} after this training step", got.get(stat), want[stat]):
                return fail(where, with_cause(p, _match(got.get(stat), info[stat])))
        if p := _raised("backward(dy)", bwd):
            return fail(where, p)
        for key in ("gamma", "beta", "backward"):
            if key != "backward" and key not in grads:
                return fail(where, f"backward did not set grads[{key!r}] (store dL/d{key} there)")
            value, short = (bwd.get("value"), "dx") if key == "backward" else (grads[key], f"d{key}")
            what = ("the gradient dL/dx returned by backward" if key == "backward" else
                    f"the gradient {short} stored in grads[{key!r}]")
            p = compare(what, value, want[key], expect_dtype="float64", batch=shape[0])
            if p := _against_numeric(short, value, info["numeric"][key], p, notes):
                return fail(where, with_cause(p, _match(value, info["dx_variants"]) if key == "backward" else None))
    if len(steps) != len(plan.expected["steps"]):
        return Verdict(False, message=incomplete(name, len(steps), len(plan.expected["steps"])))
    ev, want = record.get("eval") or {}, plan.expected["eval"]
    where = "evaluation, after the training steps"
    fwd = ev.get("forward") or {}
    if fwd.get("error"):
        return fail(where, f"forward(x, train=False) raised {fwd['error']}")
    if p := compare("the output of forward(x, train=False)", fwd.get("value"), want["forward"],
                    expect_dtype="float64"):
        return fail(where, with_cause(p, _match(fwd.get("value"), [(plan.info["eval_batch_forward"], (
            "evaluation used the batch statistics; with train=False use running_mean and running_var"))])))
    for stat in ("running_mean", "running_var"):
        if p := compare(f"self.{stat} after forward(x, train=False)", ev.get(stat), want[stat]):
            return fail(where, p + "\n  likely cause: the running statistics were updated in evaluation mode; "
                                   "update them only when train=True")
    bwd = ev.get("backward") or {}
    if bwd.get("error"):
        return fail(where, f"backward(dy) after forward(x, train=False) raised {bwd['error']}")
    if p := compare("the gradient dL/dx in evaluation mode", bwd.get("value"), want["backward"],
                    expect_dtype="float64"):
        return fail(where, p + "\n  in evaluation the statistics are constants: dx = γ dy / √(running_var + ε)")
    summary = (f"{name}: {len(steps)} training steps (output, dx, dγ, dβ, running statistics) and evaluation match "
               "dlcore's BatchNorm")
    return Verdict(True, summary=summary + (" — " + "; ".join(notes) if notes else ""))


# --------------------------------------------------------------------------- Dropout


def plan_dropout(reference: str, *, p: float = 0.3, shape: Any = (100, 200), seed: int = 0) -> Plan:
    """``Student(p, rng=seed)``: a training forward/backward, then an evaluation forward/backward."""
    if reference != "Dropout":
        raise ValueError(f"grader: check_dropout has no reference called {reference!r}")
    shape = tuple(int(n) for n in shape)
    rng = np.random.default_rng(10_000 + seed)
    z = rng.standard_normal(shape)
    x = np.where(z >= 0, 1.0, -1.0) * (np.abs(z) + 0.05)        # no zeros: a zero output means "dropped"
    dy = rng.standard_normal(shape)
    ref = Dropout(p, rng=seed)
    return Plan("dropout", reference, inputs={"p": float(p), "seed": int(seed), "x": x, "dy": dy, "trace": ["Dropout"]},
                expected={"forward": np.array(ref.forward(x.copy(), train=True)),
                          "backward": np.array(ref.backward(dy.copy()))})


def judge_dropout(plan: Plan, record: dict) -> Verdict:
    name = _name(record, "Dropout")
    if bad := _delegated(record, "Dropout"):
        return bad
    p, seed, x, dy = plan.inputs["p"], plan.inputs["seed"], plan.inputs["x"], plan.inputs["dy"]
    head = f"{name}({p}, rng={seed}) on x of shape {x.shape}"
    formula = ("inverted dropout: keep each unit with probability 1 − p (m_i = 1 when u_i ≥ p), y = x ⊙ m / (1 − p) "
               "in training, y = x in evaluation; dL/dx = dL/dy ⊙ m / (1 − p)")
    if (record.get("build") or {}).get("error"):
        return Verdict(False, message=f"creating {name}({p}, rng={seed}) failed: {record['build']['error']}")

    def fail(problem: str) -> Verdict:
        tail = "" if " raised " in problem else f"\n  formula: {formula}"
        return Verdict(False, message=f"{head}:\n- {problem}{tail}")

    fwd, bwd = ((record.get("train") or {}).get(part) or {} for part in ("forward", "backward"))
    for what, part in (("forward(x, train=True)", fwd), ("backward(dy)", bwd)):
        if problem := _raised(what, part):
            return fail(problem)
    y, dx = fwd.get("value"), bwd.get("value")
    note = ""
    exact = (compare("y", y, plan.expected["forward"], expect_dtype="float64") is None
             and compare("dx", dx, plan.expected["backward"], expect_dtype="float64") is None)
    if not exact:
        if not isinstance(y, np.ndarray) or y.shape != x.shape:
            return fail(compare("the output of forward(x, train=True)", y, plan.expected["forward"]) or "wrong output")
        if y.dtype != np.float64:
            return fail(f"the output has dtype {y.dtype}, expected float64 like x (multiply by a float mask)")
        kept = y != 0
        frac = float(kept.mean())
        ratio = np.where(kept, y / x, 0.0)
        scale = 1.0 / (1.0 - p)
        if kept.any() and np.allclose(ratio[kept], 1.0):
            return fail("the kept units are not scaled: inverted dropout divides them by 1 − p in training, so that "
                        "E[y] = x and evaluation needs no change")
        if kept.any() and np.allclose(ratio[kept], 1.0 - p):
            return fail("the kept units were multiplied by 1 − p; inverted dropout DIVIDES them by 1 − p in training")
        if kept.any() and p > 0 and np.allclose(ratio[kept], 1.0 / p) and abs(p - 0.5) > 1e-9:
            return fail("the kept units were divided by p; divide by the KEEP probability 1 − p")
        if not (kept.any() and np.allclose(ratio[kept], scale, rtol=1e-9)):
            return fail(compare("the output of forward(x, train=True)", y, plan.expected["forward"]) or "wrong output")
        sigma = math.sqrt(p * (1 - p) / x.size)
        if abs(frac - (1 - p)) > 5 * sigma:
            why = (" — that is p: p is the probability to DROP a unit" if abs(frac - p) <= 5 * sigma else "")
            return fail(f"{frac:.2%} of the units were kept, expected about {1 - p:.0%}{why}")
        want_dx = np.where(kept, dy * scale, 0.0)
        if not isinstance(dx, np.ndarray) or dx.shape != x.shape:
            return fail(compare("the gradient returned by backward", dx, want_dx) or "wrong gradient")
        if not np.allclose(dx, want_dx, rtol=1e-9, atol=1e-12):
            if np.allclose(dx, dy):
                cause = "backward returns dy unchanged: multiply it by the same mask and 1/(1 − p)"
            elif np.allclose(dx, np.where(kept, dy, 0.0)):
                cause = "backward forgot the 1/(1 − p) scale"
            else:
                cause = ("backward must use the SAME mask as the forward pass (keep it on the layer; do not draw "
                         "a new one)")
            problem = compare("the gradient returned by backward", dx, want_dx) or ""
            return fail(with_cause(problem, cause))
        note = " (your mask differs from the reference's u ≥ p draw, but is a valid dropout mask)"
    fwd, bwd = ((record.get("eval") or {}).get(part) or {} for part in ("forward", "backward"))
    if fwd.get("error"):
        return fail(f"forward(x, train=False) raised {fwd['error']}")
    if p_eval := compare("the output of forward(x, train=False)", fwd.get("value"), x):
        return fail(p_eval + "\n  likely cause: in evaluation inverted dropout is the identity (y = x): no mask, "
                             "no scaling")
    if bwd.get("error"):
        return fail(f"backward(dy) after forward(x, train=False) raised {bwd['error']}")
    if p_eval := compare("the gradient in evaluation mode", bwd.get("value"), dy):
        return fail(p_eval + "\n  likely cause: after an evaluation forward, backward passes dy through unchanged")
    return Verdict(True, summary=f"{name}: inverted dropout with p = {p}: training forward/backward and evaluation "
                                 f"match{note}")


# --------------------------------------------------------------------------- standardisation and ZCA whitening


def _standardize(x: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(axis=0)
    return (x - mu) / np.sqrt(x.var(axis=0) + eps)


def _zca_matrix(xc: np.ndarray, eps: float, *, ddof: int = 0, rotate_back: bool = True) -> np.ndarray:
    """W = U diag(1/√(λ + eps)) Uᵀ of centred data, Σ = x̃ᵀ x̃ / (N − ddof) = U Λ Uᵀ (without Uᵀ: PCA whitening)."""
    lam, u = np.linalg.eigh(xc.T @ xc / (xc.shape[0] - ddof))
    w = u / np.sqrt(np.maximum(lam, 0.0) + eps)
    return w @ u.T if rotate_back else w


def _zca(x: np.ndarray, eps: float, **options: Any) -> np.ndarray:
    xc = x - x.mean(axis=0)
    return xc @ _zca_matrix(xc, eps, **options)


_TRANSFORMS = {
    "standardize": ("z = (x − μ) / √(σ² + eps), μ and σ² per feature (column) over the samples", _standardize),
    "zca_whiten": ("x̃ = x − μ;  Σ = x̃ᵀ x̃ / N = U Λ Uᵀ;  W = U diag(1/√(λ + eps)) Uᵀ;  z = x̃ W", _zca),
}


def plan_transform(reference: str, *, kwargs: dict | None = None, n: int = 300, seed: int = 0) -> Plan:
    """``student(x, **kwargs)`` on n digits drawn with ``seed`` (and a shifted, scaled copy) against the formula."""
    if reference not in _TRANSFORMS:
        raise ValueError(f"grader: check_transform has no reference called {reference!r}")
    kwargs = dict(kwargs or {})
    eps = float(kwargs.get("eps", 1e-8 if reference == "standardize" else 0.1))
    d = load_digits(seed=seed, dtype="float64")
    rng = np.random.default_rng(seed)
    x1 = d.x_train[rng.choice(d.x_train.shape[0], size=int(n), replace=False)]
    x2 = 3.0 + 2.0 * rng.standard_normal((40, 6)) @ rng.standard_normal((6, 6))   # correlated, off-centre
    variants = []
    for x in (x1, x2):
        xc = x - x.mean(axis=0)
        alt = [(_TRANSFORMS[reference][1](x, 1e-300 if reference == "zca_whiten" else 0.0), "eps is missing")]
        if reference == "standardize":
            alt += [(xc / (x.std(axis=0) + eps), "eps is added to σ, not to σ² under the square root"),
                    (xc / np.sqrt(x.var(axis=0, ddof=1) + eps), "the variance uses N − 1; divide by N here"),
                    (x / np.sqrt(x.var(axis=0) + eps), "the mean was not subtracted"),
                    (xc, "the features were only centred, not divided by their standard deviation"),
                    ((x - x.mean()) / np.sqrt(x.var() + eps), "one mean and variance over the whole array were used; "
                                                               "compute them per feature (axis=0)")]
        else:
            alt += [(_zca(x, eps, ddof=1), "the covariance uses N − 1; divide by N here"),
                    (_zca(x, eps, rotate_back=False), "this is PCA whitening (x̃ U Λ^−½): ZCA rotates back with Uᵀ, "
                                                      "W = U diag(1/√(λ + eps)) Uᵀ"),
                    (x @ _zca_matrix(xc, eps), "the data was not centred before applying W: z = (x − μ) W"),
                    (xc @ np.linalg.inv(_zca_matrix(xc, eps)), "multiplied by √(λ + eps) instead of dividing by it")]
        variants.append(alt)
    return Plan("transform", reference, inputs={"cases": [{"x": x, "kwargs": kwargs} for x in (x1, x2)]},
                expected={"outputs": [_TRANSFORMS[reference][1](x, eps) for x in (x1, x2)]},
                info={"variants": variants, "formula": _TRANSFORMS[reference][0], "eps": eps})


def judge_transform(plan: Plan, record: dict) -> Verdict:
    ref = plan.reference
    name = _name(record, ref)
    if bad := _delegated(record, ref):
        return bad
    got_cases = record.get("cases") or []
    labels = ["digits", "correlated Gaussian data"]
    for i, (case, want, got) in enumerate(zip(plan.inputs["cases"], plan.expected["outputs"], got_cases, strict=False)):
        x = case["x"]
        where = (f"{name}({_args('x', kwargs=case['kwargs'])}) on {x.shape[0]} samples of {labels[i]} "
                 f"({x.shape[1]} features)")
        if problem := _raised(where, got):
            return Verdict(False, message=problem)
        if got.get("mutated"):
            return Verdict(False, message=f"{where} modified x in place; compute a new array (x - mu, not x -= mu)")
        if p := compare("the result", got.get("value"), want, rtol=1e-6, expect_dtype="float64"):
            p = with_cause(p, _match(got.get("value"), plan.info["variants"][i]))
            return Verdict(False, message=f"{where}:\n- {p}\n  formula: {plan.info['formula']} "
                                          f"(eps = {plan.info['eps']:g})")
    if len(got_cases) != len(plan.inputs["cases"]):
        return Verdict(False, message=f"{name}: not every case was recorded")
    formula = plan.info["formula"].split(";")[0]
    return Verdict(True, summary=f"{name}: matches {formula} … on digits and correlated data")


# --------------------------------------------------------------------------- the closing experiment


def plan_training(reference: str, *, kwargs: dict | None = None, lr: float = 0.1, seed: int = 0,
                  minimum: float = 0.97) -> Plan:
    """``student(x_train, t_train, x_test, optimizer, progress=False, **kwargs)`` on a digits split drawn here.

    The optimizer is the grader's plain gradient step w ← w − lr g; the student's function returns
    (scores for x_test, per-epoch training losses). The accuracy is computed here from the test labels.
    """
    if reference != "digits_mlp":
        raise ValueError(f"grader: check_training has no reference called {reference!r}")
    d = load_digits(seed=seed, dtype="float64")
    inputs = {"x_train": d.x_train, "t_train": d.t_train, "x_test": d.x_test, "lr": float(lr),
              "kwargs": dict(kwargs or {})}
    return Plan("training", reference, inputs=inputs, expected={"t_test": d.t_test, "minimum": float(minimum)},
                info={"seed": seed})


def judge_training(plan: Plan, record: dict) -> Verdict:
    name = _name(record, "the training function")
    if bad := _delegated(record, "digits_mlp"):
        return bad
    t = plan.expected["t_test"]
    minimum = plan.expected["minimum"]
    where = (f"{name}({_args('x_train', 't_train', 'x_test', 'optimizer', kwargs=plan.inputs['kwargs'])}) on a digits "
             f"split drawn by the grader (seed {plan.info['seed']}: {plan.inputs['x_train'].shape[0]} training, "
             f"{t.shape[0]} test images; optimizer: w ← w − {plan.inputs['lr']} g)")
    if problem := _raised(where, record):
        return Verdict(False, message=problem + ("" if record.get("error") else
                                                 " (is the learning rate too large, or a layer unstable?)"))
    scores = record.get("scores")
    if not isinstance(scores, np.ndarray) or scores.shape != (t.shape[0], 10):
        got = f"an array of shape {scores.shape}" if isinstance(scores, np.ndarray) else repr(scores)
        return Verdict(False, message=f"{where}: expected (scores of shape ({t.shape[0]}, 10), losses) to be "
                                      f"returned, got {got} as scores")
    history = record.get("history")
    if not isinstance(history, list) or not history or not all(math.isfinite(h) for h in history):
        return Verdict(False, message=f"{where}: expected the list of per-epoch training losses as the second result, "
                                      f"got {history!r:.80}")
    acc = float(np.mean(np.argmax(scores, axis=1) == t))
    if acc < minimum:
        return Verdict(False, message=(f"{where}: test accuracy {acc:.2%} is below the required {minimum:.0%} "
                                       f"(training loss {history[0]:.3f} → {history[-1]:.3f}). Check the loop: a new "
                                       "permutation per epoch, forward with train=True, backward in reverse order, "
                                       "update every parameter, predict with train=False"))
    return Verdict(True, summary=f"{name}: test accuracy {acc:.2%} ≥ {minimum:.0%} on a digits split drawn by the "
                                 f"grader (training loss {history[0]:.3f} → {history[-1]:.3f})")
