"""Chapter 5's check kinds (RBM, DBN), trusted side: plans from seeds with dlcore's reference, and judges.

Kinds (each ``checks.check_<kind>(student, "RBM" | "DBN", **options)``):

    energy, boltzmann, free_energy, conditional,        formulas of a tiny RBM on seeded parameters
    reconstruction_error, log_likelihood                 (one float64 case per call; ``scale`` enlarges the
                                                          parameters to test stability)
    sampler        one block-Gibbs step v → h → v' with injected uniforms
    cd, pcd        the CD-k / persistent-CD gradient with injected uniforms (the same uniforms reach the
                   student's sampler and dlcore's ``RBM.cd_gradient``); ``exact=True`` also compares CD-1
                   and CD-k_max on a tiny RBM with the exact gradient by enumeration (the bias shrinks)
    dbn_pretraining  the greedy layer-wise loop alone: ``train_rbm`` is a stand-in returning planned weights
    dbn_training   the closing experiment: train on digits the plan draws, scores on the test inputs,
                   accuracy computed here against labels the kernel never sees

Parameters: W (n_visible, n_hidden), b (n_visible,), c (n_hidden,), one sample per row (dlcore's layout).
Gradients are those of the negative log-likelihood (θ ← θ − ε · grads), as in dlcore.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcore.energy import DBN, RBM, binary_states, log_partition
from grader.kinds import Plan
from grader.trusted.messages import Verdict, _describe, compare

__all__ = [f"{step}_{kind}" for kind in (
    "energy", "boltzmann", "free_energy", "conditional", "reconstruction_error", "log_likelihood", "sampler", "cd",
    "pcd", "dbn_pretraining", "dbn_training") for step in ("plan", "judge")]

_CD_FORMULA = ("grads = −(⟨v hᵀ⟩_data − ⟨v hᵀ⟩_model): grads['W'] = (v_kᵀ p(h|v_k) − v₀ᵀ p(h|v₀)) / N, "
               "grads['b'] = mean(v_k) − mean(v₀), grads['c'] = mean(p(h|v_k)) − mean(p(h|v₀))")
_SAMPLE_RULE = "a unit is 1 where u < p, with u = rng.random(p.shape) drawn once per layer sample"
_RNG_HINT = ("the check passes its own rng: draw the uniforms with rng.random(shape) and compare them with the "
             "probabilities, as the exercise says")


# --------------------------------------------------------------------------- helpers


def _sig(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _params(n_v: int, n_h: int, seed: int, scale: float = 1.0, w_std: float = 1.0) -> tuple:
    g = np.random.default_rng(seed)
    W = g.normal(0.0, w_std, (n_v, n_h)) * scale
    b = g.normal(0.0, 0.5, n_v) * scale
    c = g.normal(0.0, 0.5, n_h) * scale
    return W, b, c, g


def _binary(g: np.random.Generator, shape: tuple, p: float = 0.5) -> np.ndarray:
    return (g.random(shape) < p).astype("float64")


def _rbm(W: np.ndarray, b: np.ndarray, c: np.ndarray) -> RBM:
    rbm = RBM(W.shape[0], W.shape[1], rng=0, dtype="float64")
    rbm.params.update(W=W.copy(), b=b.copy(), c=c.copy())
    return rbm


def _show(a: Any) -> str:
    a = np.asarray(a)
    if a.ndim == 0:
        return f"{float(a):.8g}"
    return np.array2string(a, precision=6, separator=", ", threshold=24, max_line_width=100)


def _args_text(names: list[str], args: list) -> str:
    parts = []
    for n, a in zip(names, args, strict=False):
        a = np.asarray(a)
        text = f"  {n} = {_show(a)}" if a.size <= 24 else f"  {n}: shape {a.shape}, first row {_show(a[0])}"
        parts.append(text.replace("\n", "\n" + " " * (len(n) + 5)))
    return "\n".join(parts)


def _problems_of_outcome(name: str, call: str, rec: dict, *, sampled: bool = False) -> str | None:
    """The call raised, or warned (overflow, division by zero): a failure with its reason."""
    if rec.get("error"):
        extra = f"\n  hint: {_RNG_HINT}" if sampled and "PlannedUniforms" in rec["error"] else ""
        return f"{name}: {call} raised {rec['error']}{extra}"
    warned = [w for w in rec.get("warnings") or [] if "underflow" not in w]   # exp(−large) → 0 is harmless
    if warned:
        return (f"{name}: {call} raised {', '.join(warned)} inside your code. The exercise asks for a "
                "computation that never overflows: use σ(x) from e = exp(−|x|), softplus(x) = max(x, 0) + "
                "log1p(exp(−|x|)) and the log-sum-exp trick log Σ exp(a) = m + log Σ exp(a − m), m = max a")
    return None


def _kind_of(v: Any) -> str:
    """What a student's result is, for a message: :func:`grader.trusted.messages._describe`, with a hint for
    None and the kernel's "<type>" text for an object that could not be recorded as data."""
    if v is None:
        return "None (did you forget a `return`?)"
    if isinstance(v, str):
        return v if v.startswith("<") else repr(v)
    return _describe(v)


# --------------------------------------------------------------------------- formulas


_FORMULAS = {   # quantity: (the student's argument names, the formula)
    "energy": (["v", "h", "W", "b", "c"], "E(v, h) = −bᵀv − cᵀh − vᵀWh, one value per row (shape (N,))"),
    "boltzmann": (["E"], "log Z = log Σ_v Σ_h exp(−E(v, h)) (log-sum-exp), "
                         "p(v) = Σ_h exp(−E(v, h)) / Z: a row sum of exp(−E) over h, divided by Z"),
    "free_energy": (["v", "W", "b", "c"],
                    "F(v) = −bᵀv − Σ_j softplus(c_j + (vW)_j), softplus(x) = log(1 + eˣ), one value per row"),
    "p_h_given_v": (["v", "W", "c"], "p(h_j = 1 | v) = σ(c_j + (vW)_j), shape (N, n_hidden)"),
    "p_v_given_h": (["h", "W", "b"], "p(v_i = 1 | h) = σ(b_i + (hWᵀ)_i), shape (N, n_visible)"),
    "reconstruction_error": (["v", "W", "b", "c"],
                             "mean over all entries of (v − σ(b + p(h|v) Wᵀ))², p(h|v) = σ(c + vW): one number"),
    "log_likelihood": (["X", "W", "b", "c"],
                       "(1/N) Σ_n log p(v_n) = −(1/N) Σ_n F(v_n) − log Z, log Z = log Σ_h exp(cᵀh + Σ_i "
                       "softplus(b_i + (hWᵀ)_i)) over all 2^n_hidden states h"),
}
#: p_h_given_v, p_v_given_h: (unit, given, index, which bias, its name, the product)
_CONDITIONALS = {"p_h_given_v": ("h", "v", "j", "hidden", "c", "vW"),
                 "p_v_given_h": ("v", "h", "i", "visible", "b", "hWᵀ")}


def _formula_plan(kind: str, quantity: str, reference: str, n_visible: int, n_hidden: int, batch: int, seed: int,
                  scale: float) -> Plan:
    """One seeded case of a formula, with the values that known mistakes give (``candidates``)."""
    W, b, c, g = _params(n_visible, n_hidden, seed, scale)
    rbm = _rbm(W, b, c)
    v = _binary(g, (batch, n_visible))
    h = _binary(g, (batch, n_hidden))
    args = [v, W, b, c]
    if quantity == "energy":
        args = [v, h, W, b, c]
        out = np.asarray(rbm.energy(v, h))
        vWh = np.sum((v @ W) * h, axis=1)
        cands = [(-(v @ b) - vWh, "the hidden-bias term −cᵀh is missing"),
                 (-(h @ c) - vWh, "the visible-bias term −bᵀv is missing"),
                 (-(v @ b) - (h @ c), "the interaction term −vᵀWh is missing"),
                 (-(v @ b) - (h @ c) + vWh, "the interaction term has the wrong sign: E contains −vᵀWh"),
                 (-(v @ b) - (h @ c) - np.sum(v @ W @ h.T, axis=1),
                  "vᵀWh must be computed row by row (np.sum((v @ W) * h, axis=1)), not as the matrix v W hᵀ")]
    elif quantity == "boltzmann":
        V, H = (np.asarray(binary_states(m, dtype="float64")) for m in (n_visible, n_hidden))
        E = np.asarray(rbm.energy(np.repeat(V, len(H), axis=0), np.tile(H, (len(V), 1)))).reshape(len(V), len(H))
        args = [E]
        log_z = float(log_partition(rbm))
        out = (log_z, np.exp(-np.asarray(rbm.free_energy(V)) - log_z))
        cands = [(np.exp(-E).sum(axis=0) / np.exp(log_z), "p(v) must sum over h (axis=1, the columns), not over v")] \
            if scale <= 1 else []
    elif quantity == "free_energy":
        out = np.asarray(rbm.free_energy(v))
        sp = np.logaddexp(0.0, c + v @ W)
        cands = [(-np.sum(sp, axis=1), "the visible-bias term −bᵀv is missing"),
                 (-(v @ b) - np.sum(np.logaddexp(0.0, v @ W), axis=1), "the hidden bias c is missing inside softplus"),
                 (-(v @ b) - np.sum(c + v @ W, axis=1), "softplus(x) = log(1 + eˣ) was replaced by x"),
                 (-(v @ b) + np.sum(sp, axis=1), "the softplus sum must be subtracted: F(v) = −bᵀv − Σ_j softplus(…)")]
    elif quantity in _CONDITIONALS:
        unit, given, i, side, bias, prod = _CONDITIONALS[quantity]
        x, bias_value, a = (v, c, v @ W) if unit == "h" else (h, b, h @ W.T)
        args, out = [x, W, bias_value], np.asarray(getattr(rbm, quantity)(x))
        cands = [(_sig(a), f"the {side} bias {bias} is missing: p({unit}_{i} = 1 | {given}) = "
                           f"σ({bias}_{i} + ({prod})_{i})"),
                 (_sig(-(bias_value + a)), f"σ of the negative: p({unit} = 1 | {given}) = σ(+({bias} + {prod})), "
                                           "σ(x) = 1 / (1 + e^(−x))"),
                 (bias_value + a, "the sigmoid is missing")]
    elif quantity == "reconstruction_error":
        out = float(rbm.reconstruction_error(v))
        ph = _sig(c + v @ W)
        r = _sig(b + ph @ W.T)
        cands = [(float(np.sum((v - r) ** 2)), "a sum instead of the mean over all entries"),
                 (float(np.mean(np.sum((v - r) ** 2, axis=1))), "the mean over rows only; take the mean over all "
                                                               "entries (np.mean((v − r)²))"),
                 (float(np.mean((v - _sig(b + _sig(v @ W) @ W.T)) ** 2)), "the hidden bias c is missing in p(h|v)"),
                 (float(np.mean((v - _sig(ph @ W.T)) ** 2)), "the visible bias b is missing in the reconstruction")]
    else:   # log_likelihood
        out = float(rbm.log_likelihood(v))
        log_z = float(log_partition(rbm))
        mean_f = float(np.mean(np.asarray(rbm.free_energy(v))))
        cands = [(-mean_f, "log Z is missing: log p(v) = −F(v) − log Z"),
                 (-mean_f + log_z, "log Z has the wrong sign: log p(v) = −F(v) − log Z"),
                 (mean_f - log_z, "F has the wrong sign: log p(v) = −F(v) − log Z")]
    names, formula = _FORMULAS[quantity]
    return Plan(kind=kind, reference=reference, inputs={"args": args}, expected={"out": out},
                info={"name": quantity, "names": names, "formula": formula, "seed": seed, "batch": batch,
                      "candidates": cands, "scale": scale})


def _formula_judge(plan: Plan, rec: dict) -> Verdict:
    info = plan.info
    name, names = info["name"], info["names"]
    shapes = ", ".join(f"{n} {np.shape(a)}" for n, a in zip(names, plan.inputs["args"], strict=False))
    where = f"{name}({', '.join(names)}) on a seeded case (seed {info['seed']}, scale {info['scale']:g}; {shapes})"
    problem = _problems_of_outcome(name, where, rec)
    if problem:
        return Verdict(False, message=problem)
    if rec.get("mutated"):
        which = ", ".join(names[i] for i in rec["mutated"] if i < len(names))
        return Verdict(False, message=f"{name} modified its argument(s) {which} in place; compute new arrays instead")

    def failed(p: str) -> Verdict:
        return Verdict(False, message=(f"{name} does not match dlcore's RBM {where}:\n- " + p.replace("\n", "\n  ")
                                       + f"\n  formula: {info['formula']}\n  inputs:\n"
                                       + _args_text(names, plan.inputs["args"])))

    expected, got = plan.expected["out"], rec.get("value")
    if isinstance(expected, tuple):     # boltzmann: (log Z, p(v))
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return Verdict(False, message=f"{name}: expected the pair (log_Z, p_v), got {_kind_of(got)}")
        log_z = float(expected[0])
        p = compare("log Z (first value returned)", got[0], expected[0], rtol=1e-7, expect_dtype="float64",
                    candidates=[(float(np.exp(log_z)), "you returned Z itself; return log Z (computed with "
                                                       "log-sum-exp)")] if log_z < 700 else []) \
            or compare("p(v) (second value returned)", got[1], expected[1], rtol=1e-7, expect_dtype="float64",
                       candidates=info["candidates"])
        if p:
            return failed(p)
        return Verdict(True, summary=f"{name}: log Z and p(v) match the reference (seed {info['seed']}, "
                                     f"{plan.inputs['args'][0].size} joint states, Σ p(v) = "
                                     f"{float(np.sum(got[1])):.12f})")
    scalar = np.ndim(expected) == 0
    p = compare("the result", got, expected, rtol=1e-7, batch=info["batch"], candidates=info["candidates"],
                expect_dtype=None if scalar else "float64")
    if p is None and scalar and not isinstance(got, (int, float)) and (isinstance(got, str) or np.size(got) != 1):
        p = f"the result: expected one number, got {_kind_of(got)}"
    if p:
        return failed(p)
    return Verdict(True, summary=f"{name}: matches the reference on a {info['batch']}-row case "
                                 f"(seed {info['seed']}, scale {info['scale']:g})")


def plan_energy(reference: str, *, n_visible: int = 4, n_hidden: int = 3, batch: int = 5, seed: int = 0,
                scale: float = 1.0) -> Plan:
    """The student's ``energy(v, h, W, b, c)`` (one value per row) against ``RBM.energy``."""
    return _formula_plan("energy", "energy", reference, n_visible, n_hidden, batch, seed, scale)


def plan_boltzmann(reference: str, *, n_visible: int = 3, n_hidden: int = 2, seed: int = 0,
                   scale: float = 1.0) -> Plan:
    """The student's ``boltzmann(E) -> (log_Z, p_v)`` on the table E[i, j] = E(v_i, h_j) of a tiny RBM."""
    return _formula_plan("boltzmann", "boltzmann", reference, n_visible, n_hidden, 1, seed, scale)


def plan_free_energy(reference: str, *, n_visible: int = 4, n_hidden: int = 3, batch: int = 5, seed: int = 0,
                     scale: float = 1.0) -> Plan:
    """The student's ``free_energy(v, W, b, c)`` against ``RBM.free_energy`` (large ``scale``: no overflow)."""
    return _formula_plan("free_energy", "free_energy", reference, n_visible, n_hidden, batch, seed, scale)


def plan_reconstruction_error(reference: str, *, n_visible: int = 6, n_hidden: int = 4, batch: int = 5,
                              seed: int = 0, scale: float = 1.0) -> Plan:
    """The student's ``reconstruction_error(v, W, b, c)`` against ``RBM.reconstruction_error``."""
    return _formula_plan("reconstruction_error", "reconstruction_error", reference, n_visible, n_hidden, batch, seed,
                         scale)


def plan_log_likelihood(reference: str, *, n_visible: int = 6, n_hidden: int = 4, batch: int = 5, seed: int = 0,
                        scale: float = 1.0) -> Plan:
    """The student's exact ``log_likelihood(X, W, b, c)`` against ``RBM.log_likelihood`` (enumeration)."""
    return _formula_plan("log_likelihood", "log_likelihood", reference, n_visible, n_hidden, batch, seed, scale)


def plan_conditional(reference: str, *, which: str = "p_h_given_v", n_visible: int = 4, n_hidden: int = 3,
                     batch: int = 5, seed: int = 0, scale: float = 1.0) -> Plan:
    """``p_h_given_v(v, W, c)`` or ``p_v_given_h(h, W, b)`` (``which``) against the RBM's conditionals."""
    if which not in _CONDITIONALS:
        raise ValueError(f"grader: which must be 'p_h_given_v' or 'p_v_given_h', got {which!r}")
    return _formula_plan("conditional", which, reference, n_visible, n_hidden, batch, seed, scale)


judge_energy = judge_boltzmann = judge_free_energy = judge_conditional = _formula_judge
judge_reconstruction_error = judge_log_likelihood = _formula_judge


# --------------------------------------------------------------------------- samplers (injected uniforms)


def _uniform_blocks(shapes: list[tuple[int, ...]], seed: int) -> list[np.ndarray]:
    g = np.random.default_rng(seed)
    return [g.random(s) for s in shapes]


def _sampled_failure(problem: str, plan: Plan, rec: dict, names: list[str] | None = None) -> Verdict:
    """A sampler kind's failure: the problem, the inputs (when ``names`` are given) and the draws made."""
    text = problem + ("\n  inputs:\n" + _args_text(names, plan.inputs["args"]) if names else "")
    if rec.get("draws"):
        text += (f"\n  your draws from rng.random: {[tuple(d) for d in rec['draws']]}; the reference draws "
                 f"{[tuple(np.shape(b)) for b in plan.inputs['blocks']]}")
    return Verdict(False, message=text)


def plan_sampler(reference: str, *, n_visible: int = 5, n_hidden: int = 3, batch: int = 4, seed: int = 0) -> Plan:
    """One block-Gibbs step ``gibbs_step(v, W, b, c, rng) -> (h, v_new)`` with the plan's uniforms.

    h ~ p(h | v) from the first draw rng.random((N, n_hidden)), v_new ~ p(v | h) from the second,
    rng.random((N, n_visible)); compared with dlcore's RBM.sample_h / sample_v on the same uniforms.
    """
    W, b, c, g = _params(n_visible, n_hidden, seed)
    v = _binary(g, (batch, n_visible))
    rbm = _rbm(W, b, c)
    useed = seed + 1000
    blocks = _uniform_blocks([(batch, n_hidden), (batch, n_visible)], useed)
    gen = np.random.default_rng(useed)          # draws the same stream as the blocks
    h = np.asarray(rbm.sample_h(v, rng=gen))
    v1 = np.asarray(rbm.sample_v(h, rng=gen))
    ph, pv = np.asarray(rbm.p_h_given_v(v)), np.asarray(rbm.p_v_given_h(h))
    reversed_cmp = "the comparison is reversed: a unit is 1 where u < p"
    cand_h = [((blocks[0] > ph).astype("float64"), reversed_cmp),
              (ph, "h must be a binary SAMPLE (0/1), not the probabilities p(h|v)")]
    cand_v = [((blocks[1] > pv).astype("float64"), reversed_cmp),
              (pv, "v must be a binary SAMPLE (0/1), not the probabilities p(v|h)"),
              ((blocks[1] < np.asarray(rbm.p_v_given_h(ph))).astype("float64"),
               "v was sampled from p(v | p(h|v)); sample it from p(v | h) with the binary h you drew")]
    return Plan(kind="sampler", reference=reference,
                inputs={"args": [v, W, b, c], "blocks": blocks,
                        "labels": ["h ~ p(h|v), shape (N, n_hidden)", "v ~ p(v|h), shape (N, n_visible)"],
                        "extra_seed": useed + 1},
                expected={"h": h, "v": v1}, info={"seed": seed, "cand_h": cand_h, "cand_v": cand_v})


def judge_sampler(plan: Plan, rec: dict) -> Verdict:
    info = plan.info
    where = f"gibbs_step(v, W, b, c, rng) (seed {info['seed']}, v {plan.inputs['args'][0].shape})"
    problem = _problems_of_outcome("gibbs_step", where, rec, sampled=True)
    if problem:
        return _sampled_failure(problem, plan, rec)
    got = rec.get("value")
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return Verdict(False, message=f"gibbs_step: expected the pair (h, v_new), got {_kind_of(got)}")
    for label, g_, e_, cands in (("h (first value returned)", got[0], plan.expected["h"], info["cand_h"]),
                                 ("v_new (second value returned)", got[1], plan.expected["v"], info["cand_v"])):
        p = compare(label, g_, e_, rtol=0.0, candidates=cands)
        if p:
            return _sampled_failure(
                f"gibbs_step does not match dlcore's RBM sampler on the same uniforms {where}:\n- "
                + p.replace("\n", "\n  ") + f"\n  rule: {_SAMPLE_RULE}; first h ~ p(h|v) = σ(c + vW), then "
                "v_new ~ p(v|h) = σ(b + hWᵀ)", plan, rec, ["v", "W", "b", "c"])
    return Verdict(True, summary=f"gibbs_step: h and v_new equal dlcore's samples on the same uniforms "
                                 f"({plan.inputs['args'][0].shape[0]} chains, seed {info['seed']})")


# --------------------------------------------------------------------------- CD and PCD


def _cd_chain(start: np.ndarray, W: np.ndarray, b: np.ndarray, c: np.ndarray, k: int, blocks: list) -> tuple:
    """The Gibbs chain of CD-k / PCD written out on the planned uniforms (drawn in the order of ``_cd_setup``):
    the first hidden sample h ~ p(h|start) and the last visible sample v_k."""
    it = iter(blocks)
    h = h0 = (next(it) < _sig(c + start @ W)).astype("float64")
    for step in range(k):
        vk = (next(it) < _sig(b + h @ W.T)).astype("float64")
        if step < k - 1:
            h = (next(it) < _sig(c + vk @ W)).astype("float64")
    return h0, vk


def _cd_grads(v0: np.ndarray, vk: np.ndarray, W: np.ndarray, c: np.ndarray, pos: np.ndarray | None = None,
              neg: np.ndarray | None = None, m: int | None = None) -> dict:
    """Model minus data statistics: W: v_kᵀ neg / M − v₀ᵀ pos / N, b: mean(v_k) − mean(v₀), c: mean(neg) − mean(pos),
    by default with pos = p(h|v₀), neg = p(h|v_k) and M the number of chains (the likely-cause variants)."""
    pos = _sig(c + v0 @ W) if pos is None else pos
    neg = _sig(c + vk @ W) if neg is None else neg
    m = m or vk.shape[0]
    return {"W": vk.T @ neg / m - v0.T @ pos / v0.shape[0], "b": vk.sum(0) / m - v0.mean(0),
            "c": neg.sum(0) / m - pos.mean(0)}


def _cd_setup(n_visible: int, n_hidden: int, batch: int, k: int, seed: int, n_chains: int | None = None) -> tuple:
    """Seeded W, b, c, the data v₀, where the chains start (v₀, or ``n_chains`` persistent chains), the planned
    uniforms and their labels, dlcore's gradient on the same uniforms, and the variants every CD mistake shares."""
    W, b, c, g = _params(n_visible, n_hidden, seed)
    v0 = _binary(g, (batch, n_visible))
    start = v0 if n_chains is None else _binary(g, (n_chains, n_visible))
    useed = seed + (2000 if n_chains is None else 4000)
    n = start.shape[0]      # the draws, in dlcore's order: h ~ p(h|start), then k times v ~ p(v|h), h ~ p(h|v)
    shapes, labels = [(n, n_hidden)], ["h₀ ~ p(h|v₀)" if n_chains is None else "h ~ p(h|chain)"]
    for step in range(k):
        shapes.append((n, n_visible))
        labels.append(f"v_{step + 1} ~ p(v|h)")
        if n_chains is not None or step < k - 1:    # CD draws no h after the last v
            shapes.append((n, n_hidden))
            labels.append(f"h_{step + 1} ~ p(h|v_{step + 1})")
    blocks = _uniform_blocks(shapes, useed)
    rbm = _rbm(W, b, c)
    persistent = {} if n_chains is None else {"persistent": start.copy()}
    ref = {key: np.asarray(val) for key, val in
           rbm.cd_gradient(v0, k=k, rng=np.random.default_rng(useed), **persistent).items()}
    variants = [
        ({kk: -vv for kk, vv in ref.items()},
         "the positive and negative phases are swapped (or you returned the ascent direction): return the gradient "
         "of −log p, ⟨·⟩_model − ⟨·⟩_data, so that θ ← θ − ε·grads learns"),
        (_cd_grads(v0, _cd_chain(start, W, b, 0 * c, k, blocks)[1], W, 0 * c),
         "the hidden bias c is missing in p(h|v) = σ(c + vW)"),
    ]
    return W, b, c, v0, start, rbm, ref, blocks, labels, useed, variants


def plan_cd(reference: str, *, n_visible: int = 6, n_hidden: int = 4, batch: int = 5, k: int = 1, seed: int = 0,
            exact: bool = False, k_max: int = 30) -> Plan:
    """``cd_gradient(v0, W, b, c, k, rng) -> {"W", "b", "c"}`` against ``RBM.cd_gradient`` on the same uniforms.

    Draw order (as dlcore): h₀ ~ p(h|v₀), then k times v ~ p(v|h) and — except after the last v — h ~ p(h|v).
    ``exact``: also CD-1 and CD-``k_max`` on a tiny RBM with 4000 chains against the exact gradient.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"grader: k must be a positive integer, got {k!r}")
    W, b, c, v0, _, _, ref, blocks, labels, useed, variants = _cd_setup(n_visible, n_hidden, batch, k, seed)
    h0, vk = _cd_chain(v0, W, b, c, k, blocks)
    mine = _cd_grads(v0, vk, W, c)
    for key in ref:  # the draw order of _cd_setup is dlcore's: the hand-written CD must reproduce it exactly
        if not np.allclose(mine[key], ref[key], rtol=1e-10, atol=1e-12):
            raise AssertionError("grader: the planned uniforms do not reproduce dlcore's cd_gradient")
    hk = (np.random.default_rng(useed + 1).random((batch, n_hidden)) < _sig(c + vk @ W)).astype("float64")
    variants.append((_cd_grads(v0, vk, W, c, pos=h0, neg=hk), "the statistics use binary hidden SAMPLES; use the "
                     "probabilities p(h|v₀) and p(h|v_k) (less noise)"))
    if k > 1:
        variants.append((_cd_grads(v0, _cd_chain(v0, W, b, c, 1, blocks)[1], W, c),
                         f"only one Gibbs step was run; CD-k runs k = {k} steps"))
    inputs: dict[str, Any] = {"args": [v0, W, b, c, int(k)], "blocks": blocks, "labels": labels,
                              "extra_seed": useed + 1, "exact": None}
    info: dict[str, Any] = {"seed": seed, "k": int(k), "batch": batch, "variants": variants}
    if exact:
        We, be, ce, ge = _params(6, 4, seed + 7, w_std=1.5)
        X = _binary(ge, (8, 6))
        info["exact_grad"] = {key: np.asarray(val) for key, val in _rbm(We, be, ce).exact_gradient(X).items()}
        inputs["exact"] = {"v": np.tile(X, (500, 1)), "W": We, "b": be, "c": ce, "ks": [1, int(k_max)],
                           "seed": seed + 3000}
    return Plan(kind="cd", reference=reference, inputs=inputs, expected={"grads": ref}, info=info)


def _judge_grads(name: str, got: Any, expected: dict, variants: list, batch: int | None, where: str) -> str | None:
    if not isinstance(got, dict):
        return f"{name}: expected a dict {{'W': ..., 'b': ..., 'c': ...}}, got {_kind_of(got)} {where}"
    missing = [key for key in ("W", "b", "c") if key not in got]
    if missing:
        extra = " (the hidden-bias gradient grads['c'] = mean(p(h|v_k)) − mean(p(h|v₀)))" if "c" in missing else ""
        return f"{name}: the returned dict lacks {missing}{extra}; expected the keys 'W', 'b', 'c' {where}"
    for key in ("W", "b", "c"):
        p = compare(f"grads[{key!r}]", got[key], expected[key], rtol=1e-7, batch=batch,
                    candidates=[(v[key], msg) for v, msg in variants], quantity=f"grads[{key!r}]",
                    expect_dtype="float64")
        if p:
            return f"{name} does not match dlcore's RBM.cd_gradient on the same uniforms {where}:\n- " \
                + p.replace("\n", "\n  ") + f"\n  formula: {_CD_FORMULA}"
    return None


def judge_cd(plan: Plan, rec: dict) -> Verdict:
    info = plan.info
    where = f"(CD-{info['k']}, v₀ {plan.inputs['args'][0].shape}, seed {info['seed']})"
    problem = _problems_of_outcome("cd_gradient", f"cd_gradient(v0, W, b, c, k={info['k']}, rng) {where}", rec,
                                   sampled=True)
    if problem:
        return _sampled_failure(problem, plan, rec)
    problem = _judge_grads("cd_gradient", rec.get("value"), plan.expected["grads"], info["variants"], info["batch"],
                           where)
    if problem:
        return _sampled_failure(problem, plan, rec, ["v0", "W", "b", "c"])
    summary = f"cd_gradient: W, b, c equal dlcore's CD-{info['k']} on the same uniforms (seed {info['seed']})"
    if plan.inputs["exact"]:
        problem, text = _exact_bias(plan, rec)
        if problem:
            return Verdict(False, message=problem)
        summary += "; " + text
    return Verdict(True, summary=summary)


def _exact_bias(plan: Plan, rec: dict) -> tuple[str | None, str]:
    """(a failure or None, the distances of CD-1 and CD-k_max to the exact gradient on the tiny RBM)."""
    exact, ks = plan.info["exact_grad"], plan.inputs["exact"]["ks"]
    norm = float(np.sqrt(sum(np.sum(v ** 2) for v in exact.values())))
    runs = rec.get("exact_runs") or []
    if len(runs) != len(ks):
        return "cd_gradient: the runs on the tiny RBM (compared with the exact gradient) were not recorded", ""
    errs = []
    for k, run in zip(ks, runs, strict=True):
        problem = _problems_of_outcome("cd_gradient", f"on the tiny 6×4 RBM with 4000 chains, k = {k},", run)
        if problem:
            return problem, ""
        g = run.get("value")
        if not isinstance(g, dict) or any(not isinstance(g.get(key), np.ndarray) or g[key].shape != exact[key].shape
                                          for key in exact):
            return f"cd_gradient on the tiny RBM, k = {k}: expected a dict of arrays shaped like W, b, c", ""
        errs.append(float(np.sqrt(sum(np.sum((g[key] - exact[key]) ** 2) for key in exact))))
    text = (f"distance to the exact gradient (|∇| = {norm:.3f}) shrinks from {errs[0]:.3f} (k = {ks[0]}) "
            f"to {errs[-1]:.3f} (k = {ks[-1]})")
    if not (errs[-1] < 0.15 * norm and errs[0] > 2 * errs[-1]):
        return ("cd_gradient on a tiny 6×4 RBM (4000 chains) against the exact log-likelihood gradient by "
                f"enumeration: {text}; expected CD-{ks[-1]} within 15 % of |∇| and CD-1 clearly farther. "
                f"formula: {_CD_FORMULA}"), text
    return None, text


def plan_pcd(reference: str, *, n_visible: int = 6, n_hidden: int = 4, batch: int = 5, n_chains: int = 3, k: int = 1,
             seed: int = 0) -> Plan:
    """``pcd_gradient(v0, chain, W, b, c, k, rng) -> (grads, new_chain)``: persistent CD from the chains ``chain``.

    Draw order (as dlcore): h ~ p(h|chain), then k times v ~ p(v|h), h ~ p(h|v) (the last h is optional).
    Compared with ``RBM.cd_gradient(v0, k, persistent=chain)`` on the same uniforms.
    """
    W, b, c, v0, chain, rbm, ref, blocks, labels, useed, variants = _cd_setup(n_visible, n_hidden, batch, k, seed,
                                                                              n_chains)
    if n_chains != batch:
        variants.append((_cd_grads(v0, _cd_chain(chain, W, b, c, k, blocks)[1], W, c, m=batch),
                         f"the negative statistics are averaged over the batch size N = {batch}; average them over "
                         f"the M = {n_chains} chains"))
    return Plan(kind="pcd", reference=reference,
                inputs={"args": [v0, chain, W, b, c, int(k)], "blocks": blocks, "labels": labels,
                        "extra_seed": useed + 1},
                expected={"grads": ref, "chain": np.asarray(rbm.persistent_chain)},
                info={"seed": seed, "k": int(k), "batch": batch, "n_chains": n_chains, "variants": variants})


def judge_pcd(plan: Plan, rec: dict) -> Verdict:
    info = plan.info
    v0, chain, W = plan.inputs["args"][:3]
    where = f"(k = {info['k']}, v₀ {v0.shape}, {chain.shape[0]} persistent chains, seed {info['seed']})"
    problem = _problems_of_outcome("pcd_gradient", f"pcd_gradient(v0, chain, W, b, c, k, rng) {where}", rec,
                                   sampled=True)
    if problem:
        if rec.get("draws") and tuple(rec["draws"][0]) == (v0.shape[0], W.shape[1]) and v0.shape[0] != chain.shape[0]:
            problem += ("\n  likely cause: the chains were restarted at the data v0; persistent CD continues from "
                        "`chain` (h ~ p(h|chain) first)")
        return _sampled_failure(problem, plan, rec)
    got = rec.get("value")
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return Verdict(False, message=f"pcd_gradient: expected the pair (grads, new_chain), got {_kind_of(got)}")
    problem = _judge_grads("pcd_gradient", got[0], plan.expected["grads"], info["variants"], None, where)
    if problem is None:
        p = compare("new_chain (second value returned)", got[1], plan.expected["chain"], rtol=0.0,
                    candidates=[(chain, "the chain was returned unchanged: return the new visible states v_k")])
        problem = None if p is None else f"pcd_gradient {where}:\n- " + p.replace("\n", "\n  ")
    if problem:
        return _sampled_failure(problem, plan, rec, ["v0", "chain", "W", "b", "c"])
    return Verdict(True, summary=f"pcd_gradient: grads and the new chains equal dlcore's persistent CD on the same "
                                 f"uniforms (k = {info['k']}, {chain.shape[0]} chains, seed {info['seed']})")


# --------------------------------------------------------------------------- DBN


def plan_dbn_pretraining(reference: str, *, layer_sizes: Any = (8, 6, 4), n: int = 10, seed: int = 0) -> Plan:
    """``pretrain_dbn(X, layer_sizes, train_rbm) -> [(W, b, c), ...]``: the greedy loop alone.

    ``train_rbm(x, n_hidden)`` is a stand-in returning planned weights; each layer must be trained on
    the mean-field up-pass p(h = 1 | x) = σ(c + xW) of the layer below (dlcore's DBN.pretrain).
    """
    sizes = [int(s) for s in layer_sizes]
    g = np.random.default_rng(seed)
    X = g.random((n, sizes[0]))
    layers, xs, x = [], [], X
    for i in range(len(sizes) - 1):
        W = g.normal(0.0, 1.0, (sizes[i], sizes[i + 1]))
        b, c = g.normal(0.0, 0.5, sizes[i]), g.normal(0.0, 0.5, sizes[i + 1])
        layers.append((W, b, c))
        xs.append(x)
        x = np.asarray(_rbm(W, b, c).transform(x))
    return Plan(kind="dbn_pretraining", reference=reference,
                inputs={"X": X, "layer_sizes": sizes, "layers": layers}, expected={"xs": xs},
                info={"seed": seed, "sizes": sizes})


def judge_dbn_pretraining(plan: Plan, rec: dict) -> Verdict:
    sizes, layers, xs = plan.info["sizes"], plan.inputs["layers"], plan.expected["xs"]
    where = f"(layer sizes {sizes}, X {plan.inputs['X'].shape}, seed {plan.info['seed']})"
    calls = rec.get("calls") or []
    for i, cl in enumerate(calls[:len(layers)]):
        if cl["n_hidden"] != sizes[i + 1]:
            return Verdict(False, message=(f"pretrain_dbn {where}: RBM {i + 1} was trained with n_hidden = "
                                           f"{cl['n_hidden']!r}, expected {sizes[i + 1]} (layer_sizes[{i + 1}])"))
        x = cl["x"]
        cands: list[tuple[Any, str]] = []
        if i > 0:
            Wp, bp, cp = layers[i - 1]
            below = xs[i - 1]
            cands = [(plan.inputs["X"], "every RBM was trained on X; train RBM l on the up-pass of RBM l−1"),
                     (below @ Wp + cp, "the sigmoid is missing in the up-pass: p(h = 1 | x) = σ(c + xW)"),
                     (_sig(below @ Wp), "the hidden bias c is missing in the up-pass σ(c + xW)")]
        p = compare(f"the data given to train_rbm for RBM {i + 1}", x, xs[i], rtol=1e-9, candidates=cands)
        if p and isinstance(x, np.ndarray) and x.shape == xs[i].shape and set(np.unique(x)) <= {0.0, 1.0}:
            p += ("\n  likely cause: binary samples were passed; DBN pretraining passes the probabilities "
                  "p(h = 1 | x) = σ(c + xW) up (mean-field)")
        if p:
            return Verdict(False, message=f"pretrain_dbn {where}:\n- " + p.replace("\n", "\n  ")
                           + "\n  rule: x¹ = X; RBM l is trained on x^l; x^{l+1} = σ(c^l + x^l W^l)")
    if rec.get("error"):
        return Verdict(False, message=f"pretrain_dbn {where} raised {rec['error']}")
    if len(calls) != len(layers):
        return Verdict(False, message=(f"pretrain_dbn {where}: train_rbm was called {len(calls)} times; a DBN with "
                                       f"layer sizes {sizes} has {len(layers)} RBMs, trained once each"))
    if rec.get("X_changed"):
        return Verdict(False, message=f"pretrain_dbn {where} modified X in place")
    got = rec.get("value")
    if not isinstance(got, (list, tuple)) or len(got) != len(layers):
        return Verdict(False, message=(f"pretrain_dbn {where}: expected a list of {len(layers)} (W, b, c) tuples, "
                                       f"one per RBM in order, got {_kind_of(got)}"))
    for i, (g_, e_) in enumerate(zip(got, layers, strict=True)):
        p = compare(f"layer {i + 1} (W, b, c)", tuple(g_) if isinstance(g_, list) else g_, tuple(e_), rtol=0.0)
        if p:
            return Verdict(False, message=f"pretrain_dbn {where}: return the (W, b, c) train_rbm gave, in order:\n- "
                           + p.replace("\n", "\n  "))
    return Verdict(True, summary=f"pretrain_dbn: each of the {len(layers)} RBMs was trained on the up-pass of the one "
                                 f"below and the weights were returned in order (sizes {sizes})")


def plan_dbn_training(reference: str, *, seed: int = 0, minimum: float = 0.96) -> Plan:
    """The closing experiment: ``dbn_classifier(x_train, t_train, seed, train_layer=...) -> predict``.

    The plan draws a digits split (20 % test images) and pretrains a 64–256–256 DBN with dlcore's reference
    (``DBN.pretrain``: CD-1, 15 epochs, batches of 10, ε = 0.1, pixels as probabilities); the student's classifier
    receives a ``train_layer`` that hands out these reference RBMs, so a mistake in the student's CD costs only the
    CD exercise. Graded here: the pretraining loop's use of ``train_layer``, the conversion to an MLP and the
    fine-tuning. ``predict(x_test)`` gives class scores (N, 10) or labels (N,); the kernel gets the training set and
    the test INPUTS only, the accuracy is computed here.
    """
    from dlcore.data import load_digits

    d = load_digits(test_size=0.2, seed=seed, dtype="float64")
    x_train = np.asarray(d.x_train)
    sizes = [64, 256, 256]
    dbn = DBN(sizes, rng=seed, dtype="float64")
    dbn.pretrain(x_train, epochs=15, batch_size=10, lr=0.1, k=1, probabilities=True, rng=seed + 1, progress=False,
                 monitor=False)
    layers = [tuple(np.asarray(r.params[key]) for key in ("W", "b", "c")) for r in dbn.rbms]
    return Plan(kind="dbn_training", reference=reference,
                inputs={"x_train": x_train, "t_train": np.asarray(d.t_train), "x_test": np.asarray(d.x_test),
                        "seed": int(seed), "layers": layers},
                expected={"t_test": np.asarray(d.t_test)},
                info={"minimum": float(minimum), "seed": seed, "sizes": sizes})


def judge_dbn_training(plan: Plan, rec: dict) -> Verdict:
    t = plan.expected["t_test"]
    n, minimum = t.shape[0], plan.info["minimum"]
    where = (f"(digits split with seed {plan.info['seed']}: {plan.inputs['x_train'].shape[0]} training, "
             f"{n} test images)")
    if rec.get("error"):
        return Verdict(False, message=f"dbn_classifier(x_train, t_train, seed) {where} raised {rec['error']}")
    if rec.get("predict_error"):
        return Verdict(False, message=f"the predict function returned by dbn_classifier raised {rec['predict_error']}")
    calls, n_layers = rec.get("layer_calls") or [], len(plan.inputs["layers"])
    if len(calls) != n_layers:
        return Verdict(False, message=(
            f"dbn_classifier {where}: the test passed train_layer=… (dlcore's reference RBMs, so that a mistake in "
            f"your cd_gradient does not cost this exercise too) and expects it to be called once per RBM, "
            f"{n_layers} times, through your pretrain_dbn; it was called {len(calls)} times"))
    for i, n_hidden in enumerate(calls):
        if n_hidden != plan.info["sizes"][i + 1]:
            return Verdict(False, message=(f"dbn_classifier {where}: RBM {i + 1} was asked for {n_hidden!r} hidden "
                                           f"units, expected {plan.info['sizes'][i + 1]}"))
    s = rec.get("scores")
    if s is None and rec.get("returned"):
        return Verdict(False, message=f"dbn_classifier must return a function predict(x); it returned "
                                      f"{rec['returned']}")
    if not isinstance(s, np.ndarray) or s.dtype.kind not in "biuf":
        return Verdict(False, message="predict(x_test) must return class scores (N, 10) or labels (N,)")
    if s.ndim == 2 and s.shape == (n, 10):
        if not np.all(np.isfinite(s)):
            return Verdict(False, message="predict(x_test) returned NaN or inf scores: training diverged")
        pred = np.argmax(s, axis=1)
    elif s.shape == (n,) and s.dtype.kind in "biu":
        pred = s
    else:
        return Verdict(False, message=f"predict(x_test) returned shape {s.shape}; expected ({n}, 10) scores or "
                                      f"({n},) integer labels")
    acc = float(np.mean(pred == t))
    if acc < minimum:
        return Verdict(False, message=(
            f"fine-tuned DBN {where}: test accuracy {acc:.2%} is below the required {minimum:.0%}. The RBMs came "
            "from dlcore's reference through train_layer, so check the conversion to an MLP (W and the HIDDEN bias "
            "c of every RBM copied into the Affine layers, sigmoid units, a fresh output layer), that the weights "
            "are used in the order pretrain_dbn returns them, and the fine-tuning settings of the exercise."))
    return Verdict(True, summary=f"fine-tuned DBN on digits the grader drew {where}: test accuracy {acc:.2%} ≥ "
                                 f"{minimum:.0%}")
