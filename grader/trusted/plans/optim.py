"""Plans and judges of chapter 3's optimizer, schedule and initializer checks (trusted side).

check_optimizer(Student, "Adam", kwargs={"lr": 0.01}, steps=5, seed=0)
    The plan draws parameters of several shapes and one gradient per parameter and update, runs
    dlcore's optimizer on them and keeps the parameters after every update. The judge names the
    first update and parameter where the student's differ, shows w and g there, and recognises
    known mistakes by replaying them here (a flipped momentum sign, Adam without bias correction,
    eps inside the square root, AdaGrad without accumulation, weight decay of the wrong sign,
    max-norm over the wrong axis, …).
check_schedule(student_fn, "LinearDecay", kwargs={...}, steps=30)
    ε_t for t = 0 … steps − 1 against dlcore's schedule.
check_initializer(student_fn, "xavier_normal", shapes=((500, 200),), seed=0)
    Statistics of large draws (mean, standard deviation, share within one standard deviation),
    reproducibility for one seed and variety across seeds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import dlcore.optim as optim
from dlcore.gradcheck import relative_error
from dlcore.nn import init
from grader.kinds import Plan
from grader.trusted.messages import Verdict, compare, incomplete

# --------------------------------------------------------------------------- a replay of the rules (and mistakes)

_FORMULAS = {
    "SGD": "w ← w − ε g",
    "Momentum": "Δw ← μ Δw − ε g;  w ← w + Δw  (Δw starts at 0)",
    "Nesterov": "Δw ← μ Δw − ε g;  w ← w + μ Δw − ε g",
    "AdaGrad": "h ← h + g ⊙ g;  w ← w − ε g / (√h + eps)",
    "RMSProp": "h ← ρ h + (1 − ρ) g ⊙ g;  w ← w − ε g / (√h + eps)",
    "Adam": "m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;  m̂ = m / (1 − β1ᵗ);  v̂ = v / (1 − β2ᵗ);  "
            "w ← w − ε m̂ / (√v̂ + eps)  (t = 1, 2, … counts the updates)",
}

#: Known mistakes, per rule: (flag, explanation). The flags change the replay in :func:`_simulate`.
_MISTAKES: dict[str, list[tuple[str, str]]] = {
    "SGD": [("ascent", "the step goes uphill: w ← w + ε g; gradient descent subtracts the gradient")],
    "Momentum": [
        ("ascent", "the sign of the gradient term is flipped (Δw ← μ Δw + ε g, or w ← w − Δw): the lecture's "
                   "form is Δw ← μ Δw − ε g, then w ← w + Δw"),
        ("momentum_flip", "the momentum term has the wrong sign: Δw ← −μ Δw − ε g; keep +μ Δw"),
        ("no_velocity", "the velocity Δw is not kept between updates (the result is plain SGD): store it on the "
                        "optimizer, one array per parameter key"),
        ("ema", "the gradient is scaled by (1 − μ) (an exponential average): the lecture's rule is Δw ← μ Δw − ε g"),
        ("shared_velocity", "one velocity is shared by all parameters: keep one Δw per key of params"),
    ],
    "Nesterov": [
        ("plain_momentum", "this is classical momentum (w ← w + Δw); Nesterov adds the look-ahead: "
                           "w ← w + μ Δw − ε g with the new Δw"),
        ("ascent", "the sign of the gradient term is flipped: the steps go uphill"),
        ("no_velocity", "the velocity Δw is not kept between updates: store it on the optimizer, one per key"),
    ],
    "AdaGrad": [
        ("no_accumulation", "h is not accumulated: h must be the running sum h ← h + g ⊙ g over all updates, "
                            "not the current g ⊙ g"),
        ("eps_inside", "eps is inside the square root (√(h + eps)); the rule adds it outside: √h + eps"),
        ("no_sqrt", "the square root is missing: divide by √h + eps, not h + eps"),
        ("ascent", "the sign is flipped: the steps go uphill"),
    ],
    "RMSProp": [
        ("eps_inside", "eps is inside the square root (√(h + eps)); the rule adds it outside: √h + eps"),
        ("rho_swapped", "ρ and 1 − ρ are swapped: h ← ρ h + (1 − ρ) g ⊙ g keeps ρ of the old average"),
        ("accumulate", "h is summed like AdaGrad's instead of decayed: h ← ρ h + (1 − ρ) g ⊙ g"),
        ("no_sqrt", "the square root is missing: divide by √h + eps, not h + eps"),
        ("ascent", "the sign is flipped: the steps go uphill"),
    ],
    "Adam": [
        ("no_bias_correction", "the bias correction is missing: use m̂ = m / (1 − β1ᵗ) and v̂ = v / (1 − β2ᵗ) "
                               "with t = 1 at the first update"),
        ("no_bias_correction_m", "m is not bias-corrected: m̂ = m / (1 − β1ᵗ)"),
        ("no_bias_correction_v", "v is not bias-corrected: v̂ = v / (1 − β2ᵗ)"),
        ("eps_inside", "eps is inside the square root (√(v̂ + eps)); Adam adds it outside: √v̂ + eps"),
        ("t_fixed", "t does not advance: the bias correction uses t = 1 at every update; count the updates"),
        ("t_late", "t starts one update late (t = 2 at the first update); the first update uses t = 1"),
        ("correct_state", "the bias-corrected m̂, v̂ were stored back into m and v; keep m, v uncorrected"),
        ("betas_swapped", "β1 and β2 are swapped"),
        ("ascent", "the sign is flipped: the steps go uphill"),
    ],
}
_DECAY_MISTAKES = [
    ("decay_sign", "the weight decay has the wrong sign: the L2 penalty λ/2 ‖w‖² adds +λ w to the gradient"),
    ("decay_half", "the weight decay is λ/2 · w: the gradient of λ/2 ‖w‖² is λ w"),
    ("decay_no_biases", "the biases (1-D parameters) were not decayed: this exercise decays every parameter"),
    ("decay_weight", "the weight itself was decayed (w ← w − λ w) instead of adding λ w to the gradient"),
]
_MAXNORM_MISTAKES = [
    ("maxnorm_rows", "the norms were taken over rows (axis 1): a unit's incoming weights are a COLUMN W[:, j] "
                     "of an (in, out) matrix, so take the norm over axis 0"),
    ("maxnorm_always", "every unit was rescaled to norm c: only units whose norm exceeds c are rescaled "
                       "(w_j ← w_j · c / max(‖w_j‖, c))"),
    ("maxnorm_before", "the constraint was applied before the step: update first, then rescale"),
    ("maxnorm_biases", "the biases were constrained too: max-norm applies to weights with 2 or more axes only"),
    ("maxnorm_whole", "the whole matrix was rescaled by its Frobenius norm: rescale each unit (column) separately"),
]


def _max_norm(params: dict, c: float, flags: set) -> None:
    """w_j ← w_j · c / max(‖w_j‖, c) per unit (a column of an (in, out) matrix, a filter of a higher-dimensional
    weight), weights with 2 or more axes only; or a known mistake's version of it."""
    for k, w in params.items():
        if w.ndim < 2 and "maxnorm_biases" not in flags:
            continue
        if w.ndim < 2 or "maxnorm_whole" in flags:
            axes = None
        elif w.ndim == 2:
            axes = 1 if "maxnorm_rows" in flags else 0
        else:
            axes = tuple(range(1, w.ndim))
        n = np.sqrt(np.sum(w * w, axis=axes, keepdims=True))
        params[k] = w * (c / np.maximum(n, 1e-300) if "maxnorm_always" in flags else c / np.maximum(n, c))


def _denominator(h: np.ndarray, eps: float, flags: set) -> np.ndarray:
    """√h + eps, or a known mistake's version of it."""
    if "eps_inside" in flags:
        return np.sqrt(h + eps)
    return h + eps if "no_sqrt" in flags else np.sqrt(h) + eps


def _simulate(rule: str, hp: dict, kwargs: dict, params0: dict, grads_seq: list, flags: set) -> list[dict]:
    """The parameters after every update of ``rule`` with the hyperparameters ``hp`` (lr, momentum, …: the
    reference's) and the regularisation in ``kwargs``, with the mistakes named in ``flags``."""
    lr, eps = float(hp["lr"]), float(hp.get("eps", 0.0))
    lam = float(kwargs.get("weight_decay", 0.0) or 0.0)
    c = kwargs.get("max_norm")
    params = {k: np.array(v, dtype="float64") for k, v in params0.items()}
    state: dict = {}
    shared: dict = {}
    out = []
    for t, grads in enumerate(grads_seq, start=1):
        if c is not None and "maxnorm_before" in flags:
            _max_norm(params, float(c), flags - {"maxnorm_before"})
        for k in params:
            w, g = params[k], np.array(grads[k], dtype="float64")
            if lam and not (w.ndim < 2 and "decay_no_biases" in flags):
                if "decay_weight" in flags:
                    w = w - lam * w
                else:
                    g = g + (-lam if "decay_sign" in flags else 0.5 * lam if "decay_half" in flags else lam) * w
            st = state.setdefault(k, {})
            if rule == "SGD":
                step = -lr * g
            elif rule in ("Momentum", "Nesterov"):
                mu = float(hp["momentum"])
                if "shared_velocity" in flags:
                    prev = shared.get(w.shape, np.zeros_like(w))
                else:
                    prev = st.get("v", np.zeros_like(w)) if "no_velocity" not in flags else np.zeros_like(w)
                mom = -mu if "momentum_flip" in flags else mu
                v = mom * prev - (lr * (1 - mu) if "ema" in flags else lr) * g
                st["v"] = shared[w.shape] = v
                step = v if rule == "Momentum" or "plain_momentum" in flags else mu * v - lr * g
            elif rule == "AdaGrad":
                st["h"] = (g * g) if "no_accumulation" in flags else st.get("h", np.zeros_like(w)) + g * g
                step = -lr * g / _denominator(st["h"], eps, flags)
            elif rule == "RMSProp":
                rho, prev = float(hp["rho"]), st.get("h", np.zeros_like(w))
                if "rho_swapped" in flags:
                    st["h"] = (1 - rho) * prev + rho * g * g
                else:
                    st["h"] = (1 if "accumulate" in flags else rho) * prev + (1 - rho) * g * g
                step = -lr * g / _denominator(st["h"], eps, flags)
            else:  # Adam
                b1, b2 = float(hp["beta1"]), float(hp["beta2"])
                if "betas_swapped" in flags:
                    b1, b2 = b2, b1
                m = b1 * st.get("m", np.zeros_like(w)) + (1 - b1) * g
                v = b2 * st.get("v", np.zeros_like(w)) + (1 - b2) * g * g
                tt = 1 if "t_fixed" in flags else t + 1 if "t_late" in flags else t
                m_hat = m if "no_bias_correction" in flags or "no_bias_correction_m" in flags else m / (1 - b1 ** tt)
                v_hat = v if "no_bias_correction" in flags or "no_bias_correction_v" in flags else v / (1 - b2 ** tt)
                st["m"], st["v"] = (m_hat, v_hat) if "correct_state" in flags else (m, v)
                step = -lr * m_hat / _denominator(v_hat, eps, flags)
            params[k] = w - step if "ascent" in flags else w + step
        if c is not None and "maxnorm_before" not in flags:
            _max_norm(params, float(c), flags)
        out.append({k: v.copy() for k, v in params.items()})
    return out


def _same(a: dict, b: dict, tol: float = 1e-6) -> bool:
    """Every array of ``b`` matched by a finite array of its shape in ``a``: |g − e| ≤ tol (|e| + 10⁻³ max|e|)."""
    return all(isinstance(g := a.get(k), np.ndarray) and g.shape == e.shape and bool(np.all(np.isfinite(g)))
               and np.allclose(g, e, rtol=tol, atol=tol * 1e-3 * (np.max(np.abs(e)) + 1e-12)) for k, e in b.items())


# --------------------------------------------------------------------------- message building (also training.py)


def _name(record: dict, default: str) -> str:
    return str(record.get("origin", {}).get("name") or default)


def _args(*names: str, args: Any = (), kwargs: dict | None = None) -> str:
    """The arguments of a call as the student would write them: ``x, 5, eps=0.001`` (``names`` as they are)."""
    return ", ".join([*names, *map(repr, args), *(f"{k}={v!r}" for k, v in (kwargs or {}).items())])


def _delegated(record: dict, reference: str) -> Verdict | None:
    """Zero for a solution that is, inherits or calls dlcore's code (the record's origin) instead of its own."""
    origin = record.get("origin", {})
    code = [f"base class {b}" for b in origin.get("dlcore_bases", [])] + list(origin.get("dlcore_code", []))
    if str(origin.get("module", "")).startswith("dlcore"):
        why = f"it is defined in dlcore ({origin['module']}), not in your notebook"
    elif code:
        why = f"its code comes from dlcore: {', '.join(code)}"
    elif origin.get("calls_reference"):
        why = f"it calls dlcore's {', '.join(origin['calls_reference'][:3])} instead of computing the result"
    else:
        return None
    return Verdict(False, message=(
        f"{origin.get('name', 'your code')} uses dlcore's reference implementation: {why}. This exercise asks you "
        f"to write {reference} yourself, so it scores zero while it delegates to dlcore."))


def with_cause(problem: str, cause: str | None) -> str:
    """``problem`` (a compare() message) with ``cause`` as its likely cause, replacing compare()'s generic guess."""
    if not cause:
        return problem
    lines = [ln for ln in problem.split("\n") if not ln.strip().startswith("likely cause:")]
    return "\n".join(lines) + f"\n  likely cause: {cause}"


def _raised(what: str, got: dict) -> str | None:
    """``what raised <the error>`` or the NumPy warning of one recorded call; None when it ran cleanly."""
    if got.get("error"):
        return f"{what} raised {got['error']}"
    if warnings := got.get("warnings"):
        return (f"{what} raised a NumPy warning ({'; '.join(warnings[:2])}): the computation overflowed or divided "
                "by zero, which this exercise does not allow")
    return None


# --------------------------------------------------------------------------- check_optimizer


def plan_optimizer(reference: str, *, kwargs: dict | None = None, steps: int = 5, seed: int = 0,
                   shapes: Any = ((3, 4), (4,), (2, 3))) -> Plan:
    """Drive the student's optimizer CLASS and dlcore's ``reference`` with one gradient sequence.

    ``student(**kwargs)`` and ``dlcore.optim.<reference>(**kwargs)`` update the same parameters
    (standard normal, one per shape in ``shapes``) with ``steps`` gradients each (seeded; the second
    parameter's gradients are 10⁻⁴ times smaller, which tells eps inside from eps outside a square
    root). Every update is compared, in float64.
    """
    if reference not in _FORMULAS:
        raise ValueError(f"grader: check_optimizer has no reference called {reference!r} "
                         f"(one of {sorted(_FORMULAS)}; a bug in the notebook's test cell)")
    kwargs = dict(kwargs or {})
    shapes = [tuple(int(n) for n in s) for s in shapes]
    kinds = ["W" if len(s) >= 2 else "b" for s in shapes]      # weights (2 or more axes) and biases: W1, b1, W2, …
    keys = [f"{k}{kinds[:i + 1].count(k)}" for i, k in enumerate(kinds)]
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s) for k, s in zip(keys, shapes, strict=True)}
    grads = [{k: rng.standard_normal(s) * (1e-4 if i == 1 else 1.0)
              for i, (k, s) in enumerate(zip(keys, shapes, strict=True))} for _ in range(int(steps))]
    opt = getattr(optim, reference)(**kwargs)
    hp = {k: float(getattr(opt, k)) for k in ("lr", "momentum", "rho", "beta1", "beta2", "eps") if hasattr(opt, k)}
    current = {k: v.copy() for k, v in params.items()}
    expected = []
    for g in grads:
        opt.update(current, {k: v.copy() for k, v in g.items()})
        expected.append({k: np.array(v, copy=True) for k, v in current.items()})
    decay, max_norm = bool(kwargs.get("weight_decay")), kwargs.get("max_norm") is not None
    mistakes = _MISTAKES[reference] + (_DECAY_MISTAKES if decay else []) + (_MAXNORM_MISTAKES if max_norm else [])
    if decay or max_norm:
        mistakes = [m for m in mistakes if m[0] != "ascent"] + [
            ("no_regularization", "neither the weight decay nor the max-norm constraint was applied")]

    def replay(flags: set, kw: dict = kwargs) -> list[dict]:
        return _simulate(reference, hp, kw, params, grads, flags)

    plain = {k: v for k, v in kwargs.items() if k not in ("weight_decay", "max_norm")}
    variants = [{"flag": flag, "why": why, "trajectory": replay(set(), plain) if flag == "no_regularization"
                 else replay({flag})} for flag, why in mistakes]
    info = {"variants": variants, "formula": _FORMULAS[reference], "replay": replay(set())}
    trace = [reference] + (["apply_max_norm", "renorm", "unit_norms"] if max_norm else [])
    return Plan("optimizer", reference, inputs={"kwargs": kwargs, "params": params, "grads": grads, "trace": trace},
                expected={"trajectory": expected}, info=info)


def judge_optimizer(plan: Plan, record: dict) -> Verdict:
    ref, kw, planned = plan.reference, plan.inputs["kwargs"], plan.inputs["params"]
    name = _name(record, ref)
    if bad := _delegated(record, ref):
        return bad
    ctor = f"{name}({_args(kwargs=kw)})"
    context = f"{ctor} on {len(planned)} parameters ({', '.join(f'{k} {tuple(v.shape)}' for k, v in planned.items())})"
    if (record.get("build") or {}).get("error"):
        return Verdict(False, message=f"creating {ctor} failed: {record['build']['error']}")
    steps, expected = record.get("steps") or [], plan.expected["trajectory"]
    for s, (want, got) in enumerate(zip(expected, steps, strict=False)):
        where = f"{context}, update {s + 1} of {len(expected)}"
        if problem := _raised(f"{where}: update", got):
            return Verdict(False, message=problem)
        if got.get("grads_changed"):
            return Verdict(False, message=(
                f"{where}: update modified grads{got['grads_changed']} in place; leave the caller's gradients as "
                "they are (compute g + λ w, m, v … into new arrays)"))
        for k, e in want.items():
            g = (got.get("params") or {}).get(k)
            if problem := compare(f"params[{k!r}] after update {s + 1}", g, e, rtol=1e-7, expect_dtype="float64"):
                return Verdict(False, message=f"{name} does not match dlcore's {ref} ({where}):\n- "
                                              + _mismatch(plan, steps, s, k, g, problem))
        not_in_place = [k for k, same in (got.get("in_place") or {}).items() if not same]
        stale = [k for k, orig in (got.get("originals") or {}).items()
                 if isinstance(orig, np.ndarray) and not np.allclose(orig, want[k], rtol=1e-7, atol=1e-12)]
        if not_in_place and stale:
            return Verdict(False, message=(
                f"{where}: params{stale} hold the right values, but in NEW arrays: the arrays the caller passed were "
                "not changed. Update in place (w -= …, or w[...] = …): a network's layers keep these very arrays, "
                "so a new array in the dict never reaches the network"))
    if len(steps) != len(expected):
        return Verdict(False, message=incomplete(name, len(steps), len(expected)))
    return Verdict(True, summary=f"{name}: {len(expected)} updates of {len(planned)} parameters match "
                                 f"dlcore's {ref} ({_args(kwargs=kw)})")


def _mismatch(plan: Plan, steps: list, s: int, k: str, g: Any, problem: str) -> str:
    """compare()'s ``problem`` with params[k] after update s + 1: the likely cause (a replayed mistake that gives
    every recorded update), w and g where the error is worst, and the rule."""
    kw, expected = plan.inputs["kwargs"], plan.expected["trajectory"]
    msg = with_cause(problem, _cause(plan, steps))
    idx = _worst(g, expected[s][k])
    if idx is not None:
        before = plan.inputs["params"][k] if s == 0 else expected[s - 1][k]
        msg += (f"\n  at index {idx}: w before this update = {before[idx]:.6g} (the reference's), "
                f"g = {plan.inputs['grads'][s][k][idx]:.6g}")
    msg += f"\n  formula: {plan.info['formula']}"
    if kw.get("weight_decay"):
        msg += f"; weight decay: g ← g + λ w with λ = {kw['weight_decay']}"
    if kw.get("max_norm") is not None:
        msg += f"; max-norm after the step: w_j ← w_j · c / max(‖w_j‖, c) per column, c = {kw['max_norm']}"
    return msg


def _worst(g: Any, e: np.ndarray) -> tuple | None:
    """The index compare() reports: the worst relative error (dlcore.gradcheck's measure)."""
    if not isinstance(g, np.ndarray) or g.shape != e.shape or g.dtype.kind not in "fiu":
        return None
    return tuple(relative_error(np.asarray(g, dtype="float64"), e, equal_nan=True)[1])


def _cause(plan: Plan, steps: list) -> str | None:
    got = [st.get("params") or {} for st in steps if not st.get("error")]
    if not got:
        return None
    return next((variant["why"] for variant in plan.info["variants"]
                 if all(_same(g, v) for g, v in zip(got, variant["trajectory"][:len(got)], strict=True))), None)


# --------------------------------------------------------------------------- check_schedule


def plan_schedule(reference: str, *, kwargs: dict, steps: int = 30) -> Plan:
    """ε_t = student(t, **kwargs) for t = 0 … steps − 1 against dlcore.optim.<reference>(**kwargs)(t)."""
    if reference not in ("LinearDecay", "StepDecay", "ExponentialDecay", "CosineDecay"):
        raise ValueError(f"grader: check_schedule has no reference called {reference!r}")
    sched = getattr(optim, reference)(**kwargs)
    ts = list(range(int(steps)))
    expected = [float(sched(t)) for t in ts]
    kw = dict(kwargs)
    variants = []
    if reference == "LinearDecay":
        lr0, a, lo = float(kw["lr0"]), float(kw["alpha"]), float(kw.get("min_lr", 0.0))
        variants = [([lr0 - a * t for t in ts], "the floor is missing: ε_t = max(ε0 − α t, ε_min)"),
                    ([min(lr0 - a * t, lo) for t in ts], "min instead of max: the floor is ε_t = max(ε0 − α t, ε_min)"),
                    ([max(lr0 - a * (t + 1), lo) for t in ts], "off by one: the first update (t = 0) uses ε0"),
                    ([max(lr0 * (1 - a * t), lo) for t in ts], "the decay is relative (ε0 (1 − α t)); the lecture "
                                                               "subtracts α t: ε_t = ε0 − α t")]
    elif reference == "StepDecay":
        lr0, s, gm = float(kw["lr0"]), int(kw["step_size"]), float(kw.get("gamma", 0.1))
        variants = [([lr0 * gm ** (t / s) for t in ts], "the exponent is not floored: ε_t = ε0 γ^⌊t / s⌋ "
                                                        "(use integer division t // s)"),
                    ([lr0 * gm ** ((t + 1) // s) for t in ts], "off by one: the rate drops first at t = s"),
                    ([lr0 * gm ** (t // s + 1) for t in ts], "one decay too many: ε_0 = ε0 (γ⁰ = 1)"),
                    ([lr0 * gm * (t // s) if t >= s else lr0 for t in ts],
                     "γ multiplied by the number of steps instead of raised to it: ε_t = ε0 γ^⌊t / s⌋")]
    return Plan("schedule", reference, inputs={"kwargs": kw, "ts": ts, "trace": [reference]},
                expected={"values": expected}, info={"variants": variants})


def _close(values: list, expected: list) -> bool:
    """Floats, each within 10⁻⁹ (relative) of the expected one."""
    return len(values) == len(expected) and all(isinstance(v, float) and math.isclose(v, e, rel_tol=1e-9, abs_tol=1e-15)
                                                for v, e in zip(values, expected, strict=True))


def judge_schedule(plan: Plan, record: dict) -> Verdict:
    ref, args = plan.reference, _args(kwargs=plan.inputs["kwargs"])
    name = _name(record, ref)
    if bad := _delegated(record, ref):
        return bad
    got, expected = record.get("values") or [], plan.expected["values"]
    for t, (e, g) in enumerate(zip(expected, got, strict=False)):
        where = f"{name}({t}, {args})"
        if problem := _raised(where, g):
            return Verdict(False, message=problem)
        v = g.get("value")
        if not isinstance(v, float):
            return Verdict(False, message=f"{where} returned {v!r}, expected a number")
        if not _close([v], [e]):
            values = [x.get("value") for x in got]
            cause = next((why for alt, why in plan.info["variants"] if _close(values, alt)), None)
            head = ", ".join(f"{x:.6g}" for x in expected[:8])
            return Verdict(False, message=with_cause(f"{where} = {v:.6g}, expected {e:.6g} (dlcore's {ref}).\n  the "
                                                     f"expected rates for t = 0, 1, …: {head}, …", cause))
    if len(got) != len(expected):
        return Verdict(False, message=f"{name}: {len(got)} of {len(expected)} values were recorded")
    return Verdict(True, summary=f"{name}: ε_t for t = 0 … {len(expected) - 1} matches dlcore's {ref}({args})")


# --------------------------------------------------------------------------- check_initializer

_INIT_STD = {
    "xavier_normal": ("√(2 / (fan_in + fan_out))", lambda fi, fo: math.sqrt(2.0 / (fi + fo))),
    "he_normal": ("√(2 / fan_in)", lambda fi, fo: math.sqrt(2.0 / fi)),
}


def plan_initializer(reference: str, *, shapes: Any = ((500, 200),), seed: int = 0) -> Plan:
    """``student(shape, rng=seed)`` for (fan_in, fan_out) shapes: a normal draw with the reference's std."""
    if reference not in _INIT_STD:
        raise ValueError(f"grader: check_initializer has no reference called {reference!r}")
    cases = []
    for i, shape in enumerate(shapes):
        shape = [int(n) for n in shape]
        if len(shape) != 2:
            raise ValueError("grader: check_initializer takes (fan_in, fan_out) shapes")
        fi, fo = init.fans(shape)
        std = _INIT_STD[reference][1](fi, fo)
        ref = np.asarray(getattr(init, reference)(tuple(shape), seed + i, dtype="float64"))
        if abs(float(ref.std()) / std - 1) > 0.05:  # pragma: no cover - dlcore and the formula disagree
            raise AssertionError(f"grader: dlcore's {reference} does not have the std {std}")
        cases.append({"shape": shape, "seed": seed + i, "std": std, "fans": [fi, fo]})
    return Plan("initializer", reference, inputs={"cases": [{"shape": c["shape"], "seed": c["seed"]} for c in cases],
                                                  "trace": [reference]},
                expected={"cases": cases}, info={"formula": _INIT_STD[reference][0]})


def judge_initializer(plan: Plan, record: dict) -> Verdict:
    ref, formula = plan.reference, plan.info["formula"]
    name = _name(record, ref)
    if bad := _delegated(record, ref):
        return bad
    got_cases = record.get("cases") or []
    for case, draws in zip(plan.expected["cases"], got_cases, strict=False):
        shape, seed, std = tuple(case["shape"]), case["seed"], case["std"]
        fi, fo = case["fans"]
        where = f"{name}({shape}, rng={seed})"
        if problem := next(filter(None, (_raised(where, d) for d in draws)), None):
            return Verdict(False, message=problem)
        if len(draws) < 3:
            return Verdict(False, message=f"{where}: not every draw was recorded")
        w, again, other = (d.get("value") for d in draws)
        if not isinstance(w, np.ndarray):
            return Verdict(False, message=f"{where} returned {w!r}, expected an array of shape {shape}")
        if w.shape != shape:
            return Verdict(False, message=f"{where} returned an array of shape {w.shape}, expected {shape} "
                                          "(fan_in rows, fan_out columns)")
        if w.dtype != np.float64:
            return Verdict(False, message=f"{where} returned dtype {w.dtype}, expected float64 (NumPy's default)")
        if not np.all(np.isfinite(w)):
            return Verdict(False, message=f"{where} returned NaN or inf")
        if not (isinstance(again, np.ndarray) and again.shape == w.shape and np.array_equal(again, w)):
            return Verdict(False, message=(f"{where}: two calls with the same seed gave different weights; draw "
                                           "from np.random.default_rng(rng), not from the global random state"))
        if isinstance(other, np.ndarray) and other.shape == w.shape and np.array_equal(other, w):
            return Verdict(False, message=f"{where}: the seeds {seed} and {seed + 1} gave the same weights; use rng")
        n = w.size
        mean, s = float(w.mean()), float(w.std())
        if abs(mean) > 5 * std / math.sqrt(n):
            return Verdict(False, message=(f"{where}: the mean of the {n} weights is {mean:.4g}, expected 0 "
                                           f"(within ±{5 * std / math.sqrt(n):.2g}); the weights are centred at 0"))
        tol = max(0.02, 6 / math.sqrt(2 * n))
        if abs(s / std - 1) > tol:
            cands = [("√(1 / fan_in) (LeCun's)", math.sqrt(1 / fi)),
                     ("√(1 / (fan_in + fan_out))", math.sqrt(1 / (fi + fo))),
                     ("√(2 / fan_out)", math.sqrt(2 / fo)), ("√(1 / fan_out)", math.sqrt(1 / fo)),
                     ("√(2 / fan_in) (He's)", math.sqrt(2 / fi)),
                     ("√(2 / (fan_in + fan_out)) (Xavier's)", math.sqrt(2 / (fi + fo))),
                     ("the variance itself (not its square root)", std * std), ("1", 1.0), ("0.01", 0.01)]
            cause = next((f"the standard deviation looks like {label}" for label, v in cands
                          if abs(s / v - 1) <= tol and abs(v / std - 1) > tol), None)
            return Verdict(False, message=with_cause(
                f"{where}: the standard deviation of the weights is {s:.5g}, expected {std:.5g} = {formula} "
                f"with fan_in = {fi}, fan_out = {fo}", cause))
        within = float(np.mean(np.abs(w - mean) <= s))
        if abs(within - 0.6827) > 0.02:
            hint = " (a uniform distribution has 57.7 %)" if abs(within - 0.577) < 0.02 else ""
            return Verdict(False, message=(f"{where}: {within:.1%} of the weights lie within one standard deviation "
                                           f"of the mean, a normal distribution has 68.3 %{hint}: draw from "
                                           "N(0, std²), e.g. r.normal(0.0, std, size=shape)"))
    if len(got_cases) != len(plan.expected["cases"]):
        return Verdict(False, message=f"{name}: not every shape was recorded")
    return Verdict(True, summary=f"{name}: mean 0 and std {formula} on {len(got_cases)} shape(s), "
                                 "reproducible per seed")
