"""Trusted side of the chapter-6 kinds: recurrent steps, BPTT, clipping, embeddings, sequence losses, attention.

Each ``plan_<kind>`` draws seeded float64 inputs and parameters, runs dlcore's reference on them and
keeps, next to the expected values, the values that known mistakes produce (computed here from the
reference's own pieces) so that the judge can name the cause. Later exercises are planned with
dlcore's reference for the earlier parts (or with test doubles), so one mistake costs its own points.

Kinds: rnn_step, bptt, bidirectional, clip, embedding, time_loss, attention, sdpa, mha, encoder_layer,
next_symbol, seq2seq, sequence_training.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from grader.kernel.records.sequence import LeakyIntegrator, MixingDouble, ScaleDouble
from grader.kinds import Plan
from grader.trusted.messages import Verdict, compare, incomplete, resolve_reference

__all__ = [f"{step}_{kind}" for kind in ("rnn_step", "bptt", "bidirectional", "clip", "embedding", "time_loss",
                                         "attention", "sdpa", "mha", "encoder_layer", "next_symbol", "seq2seq",
                                         "sequence_training") for step in ("plan", "judge")]

RTOL = 1e-7

_FORMULAS = {
    "RNNCell": {"h_next": "h_next = tanh(x Wx + h_prev Wh + b)", "dx": "dx = da Wxᵀ with da = dh_next ⊙ (1 − h_next²)",
                "dh_prev": "dh_prev = da Whᵀ", "Wx": "dWx = xᵀ da", "Wh": "dWh = h_prevᵀ da", "b": "db = Σₙ da"},
    "LSTMCell": {"h_next": "A = x Wx + h_prev Wh + b; f, g, i, o = σ, tanh, σ, σ of the four column blocks; "
                           "c_next = f ⊙ c_prev + g ⊙ i; h_next = o ⊙ tanh(c_next)",
                 "dc_prev": "dc_prev = (dc_next + dh_next ⊙ o ⊙ (1 − tanh²c_next)) ⊙ f",
                 "Wx": "dWx = xᵀ dA with dA = [df ⊙ f(1−f), dg ⊙ (1−g²), di ⊙ i(1−i), do ⊙ o(1−o)]"},
    "RNN": {"Wx": "dWx = Σ_t x_tᵀ da_t (a sum over every time step)", "Wh": "dWh = Σ_t h_{t−1}ᵀ da_t",
            "dxs": "da_t = (dhs_t + dh_t) ⊙ (1 − h_t²), dh_{t−1} = da_t Whᵀ, dxs_t = da_t Wxᵀ"},
    "LSTM": {"Wx": "dWx = Σ_t x_tᵀ dA_t (a sum over every time step)",
             "dxs": "dh and dc flow back from step t to step t−1 (dc_{t−1} = dc_t ⊙ f_t)"},
    "Embedding": {"W": "dW[v] = Σ over the positions p with ids[p] = v of dy[p] (np.add.at)"},
    "TimeSoftmaxCrossEntropy": {
        "loss": "L = −(1/|V|) Σ_{(n,t) ∈ V} log p_{n,t}[t_{n,t}], V = the non-padding positions",
        "dscores": "dL/ds = (p − onehot(t)) / |V| on V, 0 at padding"},
    "AdditiveAttention": {
        "context": "s_t = vᵀ tanh(h_t W_enc + q W_dec), a = softmax(s) over t, context = Σ_t a_t h_t"},
    "MultiHeadAttention": {"y": "per head: softmax(Q_h K_hᵀ / √d_k) V_h, heads concatenated, then · Wo + bo"},
}


# --------------------------------------------------------------------------- helpers


def _away(z: np.ndarray) -> np.ndarray:
    return np.where(z >= 0, 1.0, -1.0) * (np.abs(z) + 0.05)


def _ref(reference: str, args: Any = (), params: dict | None = None, **kwargs: Any) -> Any:
    layer = resolve_reference(reference)(*args, **kwargs)
    for k, v in (params or {}).items():
        layer.params[k] = np.array(v, dtype="float64")
    return layer


def _random_params(reference: str, args: Any, rng: np.random.Generator, scale: float = 0.5) -> dict:
    return {k: rng.standard_normal(np.shape(v)) * scale for k, v in _ref(reference, args).params.items()}


def _arrays(v: Any) -> Any:
    """A reference's result as NumPy: None, an array, or a tuple of arrays."""
    if v is None:
        return None
    return tuple(np.asarray(x) for x in v) if isinstance(v, tuple) else np.asarray(v)


def _shape_text(arrays: list) -> str:
    return ", ".join(str(tuple(np.shape(a))) for a in arrays if isinstance(a, np.ndarray))


def _problem(what: str, got: Any, expected: Any, cands: list, formula: str | None) -> str | None:
    g, e = np.asarray(got) if isinstance(got, np.ndarray) else None, np.asarray(expected)
    if g is not None and g.shape == e.shape and e.dtype.kind == "f" and g.dtype.kind == "f" and e.size \
            and np.max(np.abs(e)) <= 1e-12 and np.max(np.abs(g)) <= 1e-10:
        return None      # both zero up to round-off (e.g. the key bias, which softmax ignores)
    p = compare(what, got, expected, rtol=RTOL, candidates=cands, expect_dtype="float64")
    if p and formula:
        p += f"\n  formula: {formula}"
    return p


def _named(kind: str, names: list[str], got: Any, expected: Any, cands: dict, formulas: dict) -> list:
    """Compare an output (or a tuple of outputs) entry by entry, each with its own likely causes."""
    if len(names) == 1:
        got, expected = (got,), (expected,)
    elif not isinstance(got, (tuple, list)) or len(got) != len(names):
        if isinstance(got, (tuple, list)):
            gave = f"a tuple of {len(got)} values"
        elif got is None:
            gave = "None — did you forget a `return`?"
        else:
            gave = f"{type(got).__name__} {getattr(got, 'shape', '')}"
        return [f"{kind} should return a tuple ({', '.join(names)}), got {gave}"]
    problems = [_problem(f"{kind} {n}", g, e, cands.get(n, []), formulas.get(n))
                for n, g, e in zip(names, got, expected, strict=True) if e is not None]
    return [p for p in problems if p]


def _warned(part: str, outcome: dict) -> str | None:
    if outcome.get("error"):
        return f"{part} raised {outcome['error']}"
    if outcome.get("warnings"):
        return (f"{part} raised a warning: {'; '.join(outcome['warnings'])} — the exercise asks for a computation "
                "that does not overflow or divide by zero")
    return None


# --------------------------------------------------------------------------- layer kinds: plan and judge


def _expect(layer: Any, ins: list, dys: list, fkw: dict | None = None, attrs: tuple = ()) -> tuple[dict, dict]:
    """One case of a layer kind: what the kernel gets, and what dlcore's ``layer`` gives on it."""
    out = layer.forward(*[a.copy() for a in ins], **(fkw or {}))
    case = {"forward": ins, "backward": dys}
    exp = {"out": _arrays(out), "cand": {}}
    if fkw is not None:
        case["fkw"] = fkw
    if attrs:
        case["attrs"] = list(attrs)
        exp["attrs"] = {a: np.asarray(getattr(layer, a)) for a in attrs}
    exp["dx"] = _arrays(layer.backward(*[d.copy() for d in dys]))
    exp["grads"] = {k: np.asarray(v) for k, v in layer.grads.items()}
    return case, exp


def _layer_plan(kind: str, reference: str, cases: list, *, seed: int, out_names: list, dx_names: list,
                args: Any = (), params: dict | None = None, extra: dict | None = None, **info: Any) -> Plan:
    """A layer kind's plan from (case, expected) pairs; ``extra`` goes to the kernel, ``info`` to the judge."""
    inputs = {"args": list(args), "kwargs": {}, "params": params or {}, "cases": [c for c, _ in cases], **(extra or {})}
    info = {"ref_name": reference, "seed": seed, "out_names": out_names, "dx_names": dx_names, **info}
    return Plan(kind, reference, inputs, {"cases": [e for _, e in cases]}, info)


def _case_problems(exp: dict, got: dict, info: dict) -> list[str]:
    """What is wrong in one case: forward's outputs, attributes and inputs, then backward's results."""
    cands, formulas = exp["cand"], _FORMULAS.get(info["ref_name"], {})
    why = _warned("forward", got["forward"])
    if why:
        return [why]
    problems = _named("forward's", info["out_names"], got["forward"]["value"], exp["out"], cands, formulas)
    problems += [_problem(f"the attribute self.{attr} after forward", got["attrs"].get(attr), e, cands.get(attr, []),
                          formulas.get(attr)) for attr, e in exp.get("attrs", {}).items()]
    problems += [f"forward modified its input #{i + 1} in place; work on a copy" for i in got.get("mutated", [])]
    if any(problems):
        return [p for p in problems if p]
    if got["backward"] is None:
        return ["backward was not run"]
    why = _warned("backward", got["backward"])
    if why:
        return [why]
    if info["dx_names"]:
        problems += _named("backward's", info["dx_names"], got["backward"]["value"], exp["dx"], cands, formulas)
    for k, e in exp["grads"].items():
        problems.append(_problem(f"the gradient d{k} stored in grads[{k!r}]", got["grads"][k], e, cands.get(k, []),
                                 formulas.get(k)) if k in got["grads"] else
                        f"backward did not set grads[{k!r}] (store dL/d{k} there)")
    problems += [_problem(label, g, e, cands.get(label, []), None) for label, g, e in
                 zip(info.get("double_names", []), got.get("double_grads", []), exp.get("double_grads", []),
                     strict=False)]
    return [p for p in problems if p]


def _judge_layer(plan: Plan, rec: dict) -> Verdict:
    """Every layer kind's judge: the constructor and params, then each case's forward and backward."""
    info, inputs = plan.info, plan.inputs
    ref, name = info["ref_name"], str(rec.get("name") or info["ref_name"])
    note = info.get("note")

    def fail(message: str) -> Verdict:
        return Verdict(False, message=message + (f"\n({note})" if note else ""))

    shown = [f"<layer {i + 1}>" for i in range(len(inputs.get("doubles", [])))] + inputs["args"]
    ctor = f"{name}({', '.join([repr(a) for a in shown] + [f'{k}={v!r}' for k, v in inputs['kwargs'].items()])})"
    if rec.get("build_error"):
        return fail(f"{name}: creating the layer as {ctor} failed with {rec['build_error']}")
    if rec.get("param_error"):
        return fail(f"{name} {rec['param_error']}; the reference has params {sorted(inputs['params'])}")
    want, got_shapes = inputs["params"], rec.get("param_shapes")
    if want and got_shapes is not None:
        if sorted(got_shapes) != sorted(want):
            return fail(f"{name}.params has the keys {sorted(got_shapes)}, expected {sorted(want)}: use exactly these "
                        "names")
        for k, v in want.items():
            if tuple(got_shapes[k]) != np.shape(v):
                hint = " (transposed?)" if tuple(got_shapes[k]) == np.shape(v)[::-1] else ""
                return fail(f"{name}: params[{k!r}] created by {ctor} has shape {tuple(got_shapes[k])}, expected "
                            f"{np.shape(v)}{hint}")
    n = len(inputs["cases"])
    if len(rec.get("cases", [])) != n:
        return fail(incomplete(name, len(rec.get("cases", [])), n))
    worst = 0.0
    for ci, (case, exp, got) in enumerate(zip(inputs["cases"], plan.expected["cases"], rec["cases"], strict=True)):
        problems = _case_problems(exp, got, info)
        if problems:
            fkw = case.get("fkw", {})
            extra = "".join(f", {k}={v!r}" for k, v in fkw.items() if not isinstance(v, np.ndarray))
            if isinstance(fkw.get("mask"), np.ndarray):
                extra += ", mask (padding at the end of some sequences)"
            body = "\n".join("- " + p.replace("\n", "\n  ") for p in problems[:4])
            return fail(f"{name} does not match dlcore's {ref} (checked on inputs of shape "
                        f"{_shape_text(case['forward'])}{extra}, seed {info['seed']}) [case {ci + 1} of {n}]:\n{body}")
        for k, e in exp["grads"].items():
            g = got["grads"].get(k)
            if isinstance(g, np.ndarray) and g.shape == np.shape(e):
                worst = max(worst, float(np.max(np.abs(g - e)) / (np.max(np.abs(e)) + 1e-300)))
    return Verdict(True, summary=(f"{name}: forward and backward match dlcore's {ref} on {n} case(s) (worst rel. "
                                  f"error of a gradient {worst:.1e})" + (f" ({note})" if note else "")))


judge_rnn_step = judge_bptt = judge_bidirectional = judge_embedding = judge_time_loss = _judge_layer
judge_attention = judge_mha = judge_encoder_layer = _judge_layer


# --------------------------------------------------------------------------- one recurrent step

_LSTM_GATES = "fgio"


def _lstm_order_candidates(reference: str, args: Any, params: dict, hdim: int, ins: list, names: list) -> dict:
    """For every other gate order: the outputs ``names`` of forward(*ins) of dlcore's LSTM with its parameters'
    column blocks permuted, so that dlcore (order f, g, i, o) computes what a student reading that order computes."""
    cands: dict[str, list] = {}
    for perm in itertools.permutations(_LSTM_GATES):
        order = "".join(perm)
        if order == _LSTM_GATES:
            continue
        permuted = {k: np.concatenate([v[..., order.index(g) * hdim:(order.index(g) + 1) * hdim] for g in _LSTM_GATES],
                                      axis=-1) for k, v in params.items()}
        outs = _ref(reference, args, permuted).forward(*[a.copy() for a in ins])
        known = {"ifgo": " (PyTorch's order)", "ifog": " (Keras' order i, f, c, o)"}.get(order, "")
        why = (f"the four column blocks of A are used as the gates {', '.join(order)}{known}; this course (and dlcore) "
               "uses f, g, i, o: f = σ(A[:, :H]), g = tanh(A[:, H:2H]), i = σ(A[:, 2H:3H]), o = σ(A[:, 3H:])")
        for n, v in zip(names, outs if isinstance(outs, tuple) else (outs,), strict=True):
            cands.setdefault(n, []).append((v, why))
    return cands


def plan_rnn_step(reference: str, *, args: Any, batches: Any = (3,), seed: int = 0) -> Plan:
    """One step of RNNCell (forward(x, h_prev) -> h_next; backward(dh_next) -> (dx, dh_prev)) or LSTMCell
    (forward(x, h_prev, c_prev) -> (h_next, c_next); backward(dh_next, dc_next) -> (dx, dh_prev, dc_prev))."""
    rng = np.random.default_rng(seed)
    d, h = int(args[0]), int(args[1])
    lstm = reference == "LSTMCell"
    p = params = _random_params(reference, args, rng)
    cases = []
    for n in batches:
        ins = [_away(rng.standard_normal((n, d))), rng.standard_normal((n, h)) * 0.8]
        if lstm:
            ins.append(rng.standard_normal((n, h)))
        dys = [rng.standard_normal((n, h)) for _ in range(2 if lstm else 1)]
        layer = _ref(reference, args, params)
        case, exp = _expect(layer, ins, dys)
        x, h_prev = ins[:2]
        if lstm:
            cand = exp["cand"] = _lstm_order_candidates(reference, args, params, h, ins, ["h_next", "c_next"])
            a = x @ p["Wx"] + h_prev @ p["Wh"] + p["b"]
            sig = 1 / (1 + np.exp(-a))
            c_nof = ins[2] + np.tanh(a[:, h:2 * h]) * sig[:, 2 * h:3 * h]
            cand.setdefault("c_next", []).append((c_nof, "the forget gate is missing: c_next = f ⊙ c_prev + g ⊙ i"))
            cand.setdefault("dc_prev", []).append(
                (exp["dx"][2] / layer.cache[3][0], "dc_prev is missing the factor f: "
                                                    "dc_prev = (dc_next + dh_next ⊙ o ⊙ (1 − tanh²c_next)) ⊙ f"))
        else:
            da, h_next = dys[0], exp["out"]
            msg = "the tanh derivative is missing: use da = dh_next ⊙ (1 − h_next²) before the products"
            dwh_next = h_next.T @ (da * (1 - h_next * h_next))
            exp["cand"] = {"dx": [(da @ p["Wx"].T, msg)], "dh_prev": [(da @ p["Wh"].T, msg)], "Wx": [(x.T @ da, msg)],
                           "Wh": [(h_prev.T @ da, msg), (dwh_next, "dWh uses h_next; it is h_prevᵀ da")]}
        cases.append((case, exp))
    names = (["h_next", "c_next"], ["dx", "dh_prev", "dc_prev"]) if lstm else (["h_next"], ["dx", "dh_prev"])
    return _layer_plan("rnn_step", reference, cases, seed=seed, out_names=names[0], dx_names=names[1], args=args,
                       params=params)


# --------------------------------------------------------------------------- backpropagation through time


def _cell_steps(reference: str, args: Any, params: dict, xs: np.ndarray, dhs: np.ndarray, *, carry_h: bool = True,
                carry_c: bool = True) -> tuple[list, np.ndarray]:
    """Per-step parameter gradients and dxs of a sequence, by stepping dlcore's cell (what BPTT sums)."""
    lstm = reference == "LSTM"
    n, t_len, _ = xs.shape
    h = np.zeros((n, int(args[1])))
    c = np.zeros_like(h)
    cells = []
    for t in range(t_len):
        cell = _ref("LSTMCell" if lstm else "RNNCell", args, params)
        if lstm:
            h, c = cell.forward(xs[:, t], h, c)
        else:
            h = cell.forward(xs[:, t], h)
        cells.append(cell)
    dh, dc = np.zeros_like(h), np.zeros_like(h)
    per_step, dxs = [None] * t_len, np.zeros(xs.shape)
    for t in reversed(range(t_len)):
        dh_in = dhs[:, t] + (dh if carry_h else 0.0)
        if lstm:
            dxs[:, t], dh, dc = cells[t].backward(dh_in, dc if carry_c else None)
        else:
            dxs[:, t], dh = cells[t].backward(dh_in)
        per_step[t] = {k: np.asarray(v) for k, v in cells[t].grads.items()}
    return per_step, dxs


def plan_bptt(reference: str, *, args: Any, shapes: Any = ((2, 5, 3),), seed: int = 0) -> Plan:
    """A whole-sequence RNN or LSTM: forward(xs) -> hs (N, T, H), backward(dhs) -> dxs, grads summed over time."""
    rng = np.random.default_rng(seed)
    params = _random_params(reference, args, rng)
    hdim = int(args[1])
    broken = [({"carry_h": False}, "the gradient does not flow back through time: dL/dh_{t−1} from step t (da_t Whᵀ) "
                                   "must be added to dhs[:, t−1] before step t−1 is processed")]
    if reference == "LSTM":
        broken.append(({"carry_c": False}, "the cell-state gradient dc does not flow back through time: carry "
                                           "dc_prev = dc ⊙ f to step t−1"))
    cases = []
    for shape in shapes:
        xs = _away(rng.standard_normal(tuple(shape)))
        dhs = rng.standard_normal((shape[0], shape[1], hdim))
        case, exp = _expect(_ref(reference, args, params), [xs], [dhs])
        per_step, _ = _cell_steps(reference, args, params, xs, dhs)
        cand = exp["cand"]
        for k in exp["grads"]:
            cand[k] = [(per_step[0][k], f"d{k} holds only the contribution of the first time step: the gradients of "
                                        f"the weights must be accumulated (+=) over every step, d{k} = Σ_t …"),
                       (per_step[-1][k], f"d{k} holds only the contribution of the last time step: accumulate (+=) "
                                         "over every step instead of overwriting")]
        cand["dxs"] = []
        for carry, msg in broken:
            steps, dxs = _cell_steps(reference, args, params, xs, dhs, **carry)
            cand["dxs"].append((dxs, msg))
            for k in exp["grads"]:
                cand[k].append((sum(s[k] for s in steps), msg))
        if reference == "LSTM":
            cand.update(_lstm_order_candidates(reference, args, params, hdim, [xs], ["hs"]))
        cases.append((case, exp))
    return _layer_plan("bptt", reference, cases, seed=seed, out_names=["hs"], dx_names=["dxs"], args=args,
                       params=params)


# --------------------------------------------------------------------------- bidirectional wrapper


def plan_bidirectional(reference: str = "Bidirectional", *, sizes: Any = (3, 4, 2), shapes: Any = ((2, 5, 3),),
                       seed: int = 0) -> Plan:
    """Bidirectional(layer_fwd, layer_bwd) on two test-double recurrent layers (h_t = ½ h_{t−1} + x_t W)."""
    from dlcore.nn import Bidirectional

    rng = np.random.default_rng(seed)
    d, hf, hb = (int(s) for s in sizes)
    doubles = [{"input_size": d, "hidden_size": hf, "decay": 0.5, "W": rng.standard_normal((d, hf))},
               {"input_size": d, "hidden_size": hb, "decay": 0.5, "W": rng.standard_normal((d, hb))}]
    cases = []
    for shape in shapes:
        xs = rng.standard_normal(tuple(shape))
        dhs = rng.standard_normal((shape[0], shape[1], hf + hb))
        f, b = (LeakyIntegrator.from_spec(s) for s in doubles)
        case, exp = _expect(Bidirectional(f, b), [xs], [dhs])
        exp.update(grads={}, double_grads=[f.grads["W"], b.grads["W"]])
        f, b = (LeakyIntegrator.from_spec(s) for s in doubles)
        hs_f, hs_b = f.forward(xs), b.forward(xs[:, ::-1])
        hs_noflip = np.concatenate([hs_f, hs_b], axis=-1)
        hs_same = np.concatenate([hs_f, b.forward(xs)], axis=-1)
        dxs_noflip = f.backward(dhs[:, :, :hf]) + b.backward(dhs[:, :, hf:])
        exp["cand"] = {
            "hs": [(hs_noflip, "the backward layer's outputs are not flipped back: h←_t must be aligned with x_t "
                               "(flip hs_bwd along the time axis before concatenating)"),
                   (hs_same, "the backward layer reads the sequence forwards; give it xs[:, ::-1]")],
            "dxs": [(dxs_noflip, "the gradient of the backward layer is not flipped: flip dhs[:, :, H_f:] before "
                                 "its backward, and flip the dxs it returns")]}
        cases.append((case, exp))
    return _layer_plan("bidirectional", reference, cases, seed=seed, out_names=["hs"], dx_names=["dxs"],
                       extra={"doubles": doubles}, double_names=["the forward layer's dW (after your backward)",
                                                                 "the backward layer's dW (after your backward)"])


# --------------------------------------------------------------------------- embedding


def plan_embedding(reference: str = "Embedding", *, args: Any = (5, 3), shapes: Any = ((2, 6),), seed: int = 0) -> Plan:
    """Embedding(V, D): forward(ids) -> W[ids]; backward(dy) stores dW (repeated ids add up)."""
    rng = np.random.default_rng(seed)
    v, d = int(args[0]), int(args[1])
    params = {"W": rng.standard_normal((v, d))}
    cases = []
    for shape in shapes:
        ids = rng.integers(0, v, tuple(shape)).astype("int64")
        ids.flat[-1] = ids.flat[0]                       # at least one repeated id
        dy = rng.standard_normal(tuple(shape) + (d,))
        case, exp = _expect(_ref(reference, args, params), [ids], [dy])
        over = np.zeros((v, d))
        over[ids.reshape(-1)] = dy.reshape(-1, d)
        exp["cand"] = {"W": [(over, "repeated ids overwrite each other: dW[ids] = dy keeps only the last occurrence; "
                                    "add them up with np.add.at(dW, ids, dy)")]}
        cases.append((case, exp))
    return _layer_plan("embedding", reference, cases, seed=seed, out_names=["output"], dx_names=[], args=args,
                       params=params)


# --------------------------------------------------------------------------- time-distributed loss


def plan_time_loss(reference: str = "TimeSoftmaxCrossEntropy", *, shapes: Any = ((3, 5, 4),), seed: int = 0) -> Plan:
    """Mean softmax cross-entropy over the non-padding positions (target −1 = padding); backward() -> dscores."""
    rng = np.random.default_rng(seed)
    cases = []
    for shape in shapes:
        n, t, v = (int(s) for s in shape)
        scores = rng.standard_normal((n, t, v)) * 2
        ts = rng.integers(0, v, (n, t)).astype("int64")
        lengths = rng.integers(max(1, t // 2), t + 1, n)
        lengths[0] = t
        if n > 1:
            lengths[-1] = max(1, t - 2)
        for row, k in enumerate(lengths):
            ts[row, k:] = -1
        case, exp = _expect(_ref(reference), [scores, ts], [])
        ds, mask = exp["dx"], ts >= 0
        count = int(mask.sum())
        logp = scores - scores.max(-1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
        onehot = np.eye(v)[np.where(mask, ts, 0)] * mask[..., None]
        picked = -np.sum(onehot * logp)
        raw = np.take_along_axis(logp, ts[..., None] % v, axis=-1)[..., 0]   # −1 read as the last class
        exp["cand"] = {
            "loss": [(picked / (n * t), f"divided by N·T = {n * t}, counting the padding; divide by the number of "
                                        f"real positions |V| = {count}"),
                     (picked / n, f"divided by N = {n}; the mean is over the {count} real positions"),
                     (-raw.mean(), "the padding positions (target −1) were not masked out"),
                     (-raw.sum() / count, "the padding positions (target −1) were not masked out")],
            "dscores": [(ds * count / (n * t), f"divided by N·T = {n * t}; divide by the number of real positions "
                                               f"{count}"),
                        ((np.exp(logp) - onehot) / count, "the gradient is not zero at the padding positions")]}
        cases.append((case, exp))
    return _layer_plan("time_loss", reference, cases, seed=seed, out_names=["loss"], dx_names=["dscores"])


# --------------------------------------------------------------------------- Bahdanau attention


def plan_attention(reference: str = "AdditiveAttention", *, args: Any = (4, 3, 5), shapes: Any = ((2, 6, 4), (2, 3)),
                   mask: bool = False, seed: int = 0) -> Plan:
    """Bahdanau attention: forward(hs_enc, h_dec[, mask]) -> context and self.weights;
    backward(dcontext) -> (dhs_enc, dh_dec)."""
    rng = np.random.default_rng(seed)
    params = _random_params(reference, args, rng, scale=0.8)
    hs = rng.standard_normal(tuple(shapes[0]))
    q = rng.standard_normal(tuple(shapes[1]))
    fkw = {}
    if mask:    # padding at the end of some sequences, the first one two steps short
        lengths = rng.integers(max(1, hs.shape[1] // 2), hs.shape[1] + 1, hs.shape[0])
        lengths[0] = max(1, hs.shape[1] - 2)
        fkw["mask"] = np.arange(hs.shape[1])[None, :] < lengths[:, None]
    dctx = rng.standard_normal(q.shape[:-1] + hs.shape[-1:])          # the context's shape
    case, exp = _expect(_ref(reference, args, params), [hs, q], [dctx], fkw, attrs=("weights",))
    if mask:
        unmasked = _ref(reference, args, params)
        why = "the mask is not applied: padding steps must get weight 0 (set their scores to −inf before the softmax)"
        exp["cand"] = {"context": [(unmasked.forward(hs.copy(), q.copy()), why)], "weights": [(unmasked.weights, why)]}
    return _layer_plan("attention", reference, [(case, exp)], seed=seed, out_names=["context"],
                       dx_names=["dhs_enc", "dh_dec"], args=args, params=params)


# --------------------------------------------------------------------------- scaled dot-product attention


def _sdpa(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool, *, scale: bool = True,
          mask: bool = True, upper: bool = False) -> tuple[np.ndarray, np.ndarray]:
    from dlcore.nn.functional import softmax

    s = q @ np.swapaxes(k, -1, -2)
    if scale:
        s = s / math.sqrt(q.shape[-1])
    if causal and mask:
        tq, tk = s.shape[-2], s.shape[-1]
        allowed = np.arange(tk)[None, :] <= np.arange(tq)[:, None] + (tk - tq)
        s = np.where(allowed.T if upper else allowed, s, -np.inf)
    a = np.asarray(softmax(s))
    return a @ v, a


def plan_sdpa(reference: str = "scaled_dot_product_attention", *, shapes: Any = ((2, 4, 3), (2, 4, 3), (2, 4, 5)),
              causal: bool = False, seed: int = 0) -> Plan:
    """attention(q, k, v, causal=...) -> (out, weights): softmax(q kᵀ / √d_k) v, step t seeing steps ≤ t when causal."""
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal(tuple(s)) * 1.5 for s in shapes)
    cands = [(_sdpa(q, k, v, causal, scale=False), f"the 1/√d_k scaling is missing (d_k = {q.shape[-1]}): "
                                                   "scores = q kᵀ / √d_k")]
    if causal:
        cands.append((_sdpa(q, k, v, causal, mask=False), "the causal mask is not applied: step t may only attend to "
                                                           "steps ≤ t (scores above the diagonal = −inf)"))
        cands.append((_sdpa(q, k, v, causal, upper=True), "the mask hides the past instead of the future: keep "
                                                           "j ≤ t, i.e. np.tril, not np.triu"))
    else:
        cands.append((_sdpa(q, k, v, True), "the causal mask is applied although causal=False"))
    return Plan("sdpa", reference, {"cases": [{"args": [q, k, v], "causal": bool(causal)}]},
                {"cases": [{"out": _sdpa(q, k, v, causal), "cand": cands}]}, {"seed": seed})


def judge_sdpa(plan: Plan, record: dict) -> Verdict:
    name = str(record.get("name") or "attention")
    if len(record.get("cases", [])) != len(plan.inputs["cases"]):
        return Verdict(False, message=incomplete(name, len(record.get("cases", [])), len(plan.inputs["cases"])))
    for case, exp, got in zip(plan.inputs["cases"], plan.expected["cases"], record["cases"], strict=True):
        where = (f"{name}(q, k, v, causal={case['causal']}) with q, k, v of shapes {_shape_text(case['args'])} "
                 f"(seed {plan.info['seed']})")
        why = _warned(where, got["out"])
        if why:
            return Verdict(False, message=why)
        value = got["out"]["value"]
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            return Verdict(False, message=f"{where}: expected the pair (out, weights), got "
                                          f"{'None' if value is None else type(value).__name__}")
        for label, idx in (("the attention weights", 1), ("out", 0)):
            cands = [(c[idx], why) for c, why in exp["cand"]]
            p = compare(label, value[idx], exp["out"][idx], rtol=RTOL, candidates=cands, expect_dtype="float64")
            if p:
                return Verdict(False, message=f"{where}:\n- " + p.replace("\n", "\n  ") +
                               "\n  formula: out = softmax(q kᵀ / √d_k + M) v, M = −inf above the diagonal when causal")
        if got.get("mutated"):
            return Verdict(False, message=f"{where}: your function modified q, k or v in place; work on copies")
    return Verdict(True, summary=f"{name}: out and weights match softmax(q kᵀ/√d_k) v "
                                 f"(causal={plan.inputs['cases'][0]['causal']})")


# --------------------------------------------------------------------------- multi-head attention


def plan_mha(reference: str = "MultiHeadAttention", *, args: Any = (8, 2), shapes: Any = ((2, 5, 8),),
             causal: bool = False, seed: int = 0) -> Plan:
    """Multi-head self-attention: forward(x, causal=...) -> y; backward(dy) -> dx; grads of Wq..bo; self.weights."""
    rng = np.random.default_rng(seed)
    e, heads = int(args[0]), int(args[1])
    params = _random_params(reference, args, rng, scale=1.0 / math.sqrt(e) * 1.5)
    dk = e // heads
    unscaled = {**params, "Wq": params["Wq"] * math.sqrt(dk), "bq": params["bq"] * math.sqrt(dk)}
    cases = []
    for shape in shapes:
        x = rng.standard_normal(tuple(shape))
        dy = rng.standard_normal(x.shape)
        case, exp = _expect(_ref(reference, args, params), [x], [dy], {"causal": bool(causal)}, attrs=("weights",))
        noscale = _ref(reference, args, unscaled)
        cand = exp["cand"] = {
            "y": [(noscale.forward(x.copy(), causal=bool(causal)),
                   f"the 1/√d_k scaling is missing (d_k = E / heads = {dk})")],
            "weights": [(noscale.weights, f"the 1/√d_k scaling is missing (d_k = {dk})")]}
        if causal:
            free = _ref(reference, args, params)
            cand["y"].append((free.forward(x.copy()),
                              "the causal mask is not applied: step t may only attend to steps ≤ t"))
            cand["weights"].append((free.weights, "the causal mask is not applied"))
        cases.append((case, exp))
    return _layer_plan("mha", reference, cases, seed=seed, out_names=["y"], dx_names=["dx"], args=args, params=params)


# --------------------------------------------------------------------------- clipping


def plan_clip(reference: str = "clip_grad_norm", *, shapes: Any = ((3, 4), (4,), (4, 2)), max_norms: Any = (1.0, 100.0),
              seed: int = 0) -> Plan:
    """clip(grads, max_norm): scale every gradient by c / max(‖g‖, c) in place, ‖g‖ the global norm; return ‖g‖."""
    from dlcore.optim import clip_grad_norm

    rng = np.random.default_rng(seed)
    cases, expected = [], []
    for c in max_norms:
        grads = {f"g{i}": rng.standard_normal(tuple(s)) * 2 for i, s in enumerate(shapes)}
        ref = {k: v.copy() for k, v in grads.items()}
        norm = float(clip_grad_norm(ref, float(c)))
        per = {k: v * (c / max(float(np.linalg.norm(v)), c)) for k, v in grads.items()}
        cases.append({"grads": grads, "max_norm": float(c)})
        expected.append({"norm": norm, "after": ref, "per_tensor": per, "before": grads})
    return Plan("clip", reference, {"cases": cases}, {"cases": expected}, {"seed": seed})


def judge_clip(plan: Plan, record: dict) -> Verdict:
    name = str(record.get("name") or "clip_grads")
    if len(record.get("cases", [])) != len(plan.inputs["cases"]):
        return Verdict(False, message=incomplete(name, len(record.get("cases", [])), len(plan.inputs["cases"])))
    for case, exp, got in zip(plan.inputs["cases"], plan.expected["cases"], record["cases"], strict=True):
        shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in case["grads"].items())
        where = (f"{name}(grads, max_norm={case['max_norm']:g}) with gradients {{{shapes}}} of global norm "
                 f"{exp['norm']:.6g} (seed {plan.info['seed']})")
        why = _warned(where, got["out"])
        if why:
            return Verdict(False, message=why)
        if not got["same_keys"]:
            return Verdict(False, message=f"{where}: the dict of gradients must keep its keys")
        for k, e in exp["after"].items():
            cands = [(exp["per_tensor"][k], "each gradient was clipped by its own norm; clipping by global norm scales "
                                            "every gradient by the same factor c / max(‖g‖, c) with ‖g‖² = Σ_k ‖g_k‖²")]
            if exp["norm"] > case["max_norm"]:
                cands.append((exp["before"][k], "the gradients were not changed in place: write grads[key] = g * scale "
                                                "(or g *= scale) for every key"))
            p = compare(f"grads[{k!r}] after the call", got["after"].get(k), e, rtol=1e-9, candidates=cands,
                        expect_dtype="float64")
            if p:
                return Verdict(False, message=f"{where}:\n- " + p.replace("\n", "\n  ") +
                               "\n  formula: g_k ← g_k · c / max(‖g‖, c), ‖g‖ = sqrt(Σ_k Σ_i g_k,i²)")
        cands = [(min(exp["norm"], case["max_norm"]), "the norm after clipping was returned; return ‖g‖ before")]
        p = compare("the returned norm", got["out"]["value"], exp["norm"], rtol=1e-9, candidates=cands)
        if p:
            return Verdict(False, message=f"{where}:\n- " + p.replace("\n", "\n  "))
    return Verdict(True, summary=f"{name}: clips by the global norm and returns ‖g‖ on {len(record['cases'])} cases")


# --------------------------------------------------------------------------- Transformer encoder layer (parts: doubles)

_SWAP = {"attn": "mixing", "norm1": "scale", "norm2": "scale"}


def _encoder_candidates(layer: Any, x: np.ndarray) -> list:
    """Outputs of miswired encoder layers made of the parts of ``layer`` (dlcore's, with the stand-ins), each with
    the mistake it names."""
    attn, norm1, norm2 = layer.attn.forward, layer.norm1.forward, layer.norm2.forward

    def ffn(z: np.ndarray, relu: bool = True) -> np.ndarray:
        u = layer.ffn1.forward(z)
        return layer.ffn2.forward(np.maximum(u, 0) if relu else u)

    z, pre, a = norm1(x + attn(x)), x + attn(norm1(x)), norm1(attn(x))
    return [(pre + ffn(norm2(pre)), "the layer normalizations are applied before the sub-layers (pre-norm); the "
                                    "paper's layer is post-norm: Z = LN1(X + MHA(X)), Y = LN2(Z + FFN(Z))"),
            (norm2(ffn(z)), "the residual connection around the feed-forward sub-layer is missing (Z + FFN(Z))"),
            (norm2(a + ffn(a)), "the residual connection around the attention is missing (X + MHA(X))"),
            (norm2(z + ffn(z, relu=False)), "the ReLU between ffn1 and ffn2 is missing")]


def plan_encoder_layer(reference: str = "TransformerEncoderLayer", *, args: Any = (8, 2, 16),
                       shapes: Any = ((2, 5, 8),), seed: int = 0) -> Plan:
    """TransformerEncoderLayer(E, heads, ffn): post-norm x ← norm1(x + attn(x)); x ← norm2(x + ffn2(ReLU(ffn1(x)))).

    The student's attention and layer norms (``self.parts["attn"]``, ``["norm1"]``, ``["norm2"]``) are replaced
    by simple stand-ins with the same parameters (grader.kernel.records.sequence.MixingDouble, ScaleDouble), and
    so are dlcore's: only the wiring of this exercise is graded, not the earlier exercises again.
    """
    rng = np.random.default_rng(seed)
    e = int(args[0])

    def reference_layer(params: dict | None = None) -> Any:
        layer = _ref(reference, args, dtype="float64")
        layer.attn, layer.norm1, layer.norm2 = MixingDouble(e), ScaleDouble(e), ScaleDouble(e)
        for k, v in (params or {}).items():
            layer.params[k] = np.array(v, dtype="float64")
        return layer

    params = {k: rng.standard_normal(np.shape(v)) * 0.4 for k, v in reference_layer().params.items()}
    for k in params:
        if k.endswith("gamma"):
            params[k] = 1.0 + 0.3 * rng.standard_normal(params[k].shape)
    cases = []
    for shape in shapes:
        x = rng.standard_normal(tuple(shape))
        dy = rng.standard_normal(x.shape)
        case, exp = _expect(reference_layer(params), [x], [dy])
        exp["cand"] = {"y": _encoder_candidates(reference_layer(params), x)}
        cases.append((case, exp))
    return _layer_plan("encoder_layer", reference, cases, seed=seed, out_names=["y"], dx_names=["dx"], args=args,
                       params=params, extra={"swap": {k: [v, e] for k, v in _SWAP.items()}},
                       note="your MultiHeadAttention and LayerNorm were replaced by simple stand-ins, so only the "
                            "wiring counts")


# --------------------------------------------------------------------------- closing experiments


def _closing_plan(kind: str, reference: str, train: list, test_x: np.ndarray, expected: dict, *, seed: int,
                  options: dict | None, minimum: float, earlier: Any) -> Plan:
    """A closing experiment: the kernel gets the training data, the options and the test INPUTS, never the targets.

    ``earlier``: the notebook's classes (earlier exercises) that the model is built from; while it trains they
    are the grader's correct ones (grader.kernel.records._sequence_standins), so that a mistake in one of them
    costs that exercise's points only. ``earlier=()`` trains the student's own layers."""
    inputs = {"train": train, "options": dict(options or {}), "test_x": test_x, "earlier": [str(n) for n in earlier]}
    return Plan(kind, reference, inputs, expected, {"seed": seed, "minimum": float(minimum)})


def _closing_judge(plan: Plan, record: dict, what: str, shape: tuple, wanted: str,
                   score: Callable[[np.ndarray], str | tuple[float, str]], hint: str = "") -> Verdict:
    """A closing experiment's verdict: the predicted ids must have ``shape`` (``wanted`` says so otherwise);
    ``score`` gives a failure text, or the rate compared with the plan's minimum and its description."""
    name = str(record.get("name") or "your function")
    if standins := record.get("standins"):
        what = f"{what} (with the grader's {', '.join(map(str, standins))}: only the training counts here)"
        hint = ". Check the training loop: the order forward, loss, backward, update, the number of steps and the " \
               "learning rate"
    if record.get("error"):
        return Verdict(False, message=f"{what}: {name}: {record['error']}")
    if record.get("warnings"):
        return Verdict(False, message=(f"{what}: {name} raised a warning during training or prediction: "
                                       f"{'; '.join(record['warnings'][:3])} — look for an overflow (exp of a large "
                                       "number) or a division by zero"))
    pred = record.get("scores")
    if not isinstance(pred, np.ndarray) or pred.shape != shape or pred.dtype.kind not in "iu":
        return Verdict(False, message=f"{what}: {wanted}; got {type(pred).__name__} {getattr(pred, 'shape', '')}")
    result = score(pred)
    if isinstance(result, str):
        return Verdict(False, message=f"{what}: {result}")
    rate, msg = result
    minimum = plan.info["minimum"]
    if rate < minimum:
        return Verdict(False, message=f"{what}: {msg}, below the required {minimum:.0%}{hint}")
    return Verdict(True, summary=f"{what}: {msg} ≥ {minimum:.0%}")


def plan_next_symbol(reference: str = "LSTM", *, n_train: int = 1000, n_test: int = 300, seed: int = 0,
                     options: dict | None = None, minimum: float = 0.99,
                     earlier: Any = ("Embedding", "LSTM", "TimeSoftmaxCrossEntropy")) -> Plan:
    """The embedded Reber grammar: train(xs, ts, **options) -> model on strings the plan draws; model.forward on
    fresh test strings must pick a legal next symbol at ≥ ``minimum`` of the real positions. The notebook's
    ``earlier`` classes are the grader's correct ones while it trains (``earlier=()``: the student's own)."""
    from dlcore.data.sequences import embedded_reber_strings, next_symbol_data

    gen = np.random.default_rng(seed)
    train = next_symbol_data(embedded_reber_strings(int(n_train), gen, max_length=30))
    test = next_symbol_data(embedded_reber_strings(int(n_test), gen, max_length=30))
    return _closing_plan("next_symbol", reference, [train.xs, train.ts], test.xs,
                         {"legal": test.legal, "lengths": test.lengths}, seed=seed, options=options, minimum=minimum,
                         earlier=earlier)


def judge_next_symbol(plan: Plan, record: dict) -> Verdict:
    legal, lengths = plan.expected["legal"], plan.expected["lengths"]
    n, t, n_symbols = legal.shape

    def score(pred: np.ndarray) -> str | tuple[float, str]:
        if pred.min() < 0 or pred.max() >= n_symbols:
            return "the scores must have 7 columns, one per symbol of 'BTPSXVE'"
        real = np.arange(t)[None, :] < lengths[:, None]
        ok = np.take_along_axis(legal, pred[..., None], axis=-1)[..., 0]
        last = np.zeros_like(real)
        last[np.arange(n), lengths - 2] = True
        rate = float(ok[real].mean())
        return rate, (f"legal next symbol at {rate:.2%} of {int(real.sum())} positions of {n} fresh test strings "
                      f"(the long-range T/P repeat: {float(ok[last].mean()):.1%})")

    return _closing_judge(plan, record, "the embedded Reber grammar", (n, t),
                          f"model.forward(xs) on {n} test strings padded to {t} steps must return scores of shape "
                          f"({n}, {t}, 7)", score,
                          hint=". Check the LSTM, embedding and loss exercises first, then the number of steps and the "
                               "learning rate")


def plan_seq2seq(reference: str = "AdditiveAttention", *, n_train: int = 3000, n_test: int = 300, digits: int = 2,
                 seed: int = 0, options: dict | None = None, minimum: float = 0.5,
                 earlier: Any = ("AdditiveAttention",)) -> Plan:
    """Digit addition with an encoder–decoder: train(questions, answers, **options) -> model;
    model.generate(test questions) -> the answer ids; the fraction of right answer characters ≥ ``minimum``.
    The notebook's ``earlier`` classes are the grader's correct ones while it trains (``earlier=()``: the
    student's own)."""
    from dlcore.data.sequences import addition_data

    gen = np.random.default_rng(seed)
    q, a = addition_data(int(n_train), digits=int(digits), rng=gen, reverse=True)
    qt, at = addition_data(int(n_test), digits=int(digits), rng=gen, reverse=True)
    return _closing_plan("seq2seq", reference, [q, a], qt, {"answers": at[:, 1:]}, seed=seed, options=options,
                         minimum=minimum, earlier=earlier)


def _judge_matches(plan: Plan, record: dict, key: str, what: str, wanted: str, text: str) -> Verdict:
    """Predicted ids against the plan's targets ``expected[key]``: the fraction of right symbols (``text`` names it,
    and the fraction of entirely right rows) against the minimum."""
    want = plan.expected[key]

    def score(pred: np.ndarray) -> tuple[float, str]:
        rate = float(np.mean(pred == want))
        return rate, text.format(rate=rate, n=len(want), whole=float(np.mean(np.all(pred == want, axis=1))))

    return _closing_judge(plan, record, what, want.shape, wanted.format(shape=want.shape), score)


def judge_seq2seq(plan: Plan, record: dict) -> Verdict:
    return _judge_matches(plan, record, "answers", "digit addition with attention",
                          "model.generate(questions) must return integer ids of shape {shape}",
                          "{rate:.1%} of the answer characters of {n} fresh questions right "
                          "({whole:.1%} of the answers exactly)")


def reverse_task(n: int, length: int, rng: np.random.Generator, vocab: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Digit strings (n, length) and their reversals: the target at position t is the input at length − 1 − t."""
    xs = rng.integers(0, vocab, (n, length)).astype("int64")
    return xs, xs[:, ::-1].copy()


def plan_sequence_training(reference: str = "TransformerEncoderLayer", *, n_train: int = 2000, n_test: int = 300,
                           length: int = 8, seed: int = 0, options: dict | None = None, minimum: float = 0.9,
                           earlier: Any = ("PositionalEncoding", "TransformerEncoderLayer")) -> Plan:
    """Reversing digit strings: train(xs, ts, **options) -> model; model.forward(test xs) -> scores (N, T, 10);
    the fraction of right symbols at every position ≥ ``minimum``. The notebook's ``earlier`` classes are the
    grader's correct ones while it trains (``earlier=()``: the student's own)."""
    gen = np.random.default_rng(seed)
    xs, ts = reverse_task(int(n_train), int(length), gen)
    xt, tt = reverse_task(int(n_test), int(length), gen)
    return _closing_plan("sequence_training", reference, [xs, ts], xt, {"ts": tt}, seed=seed, options=options,
                         minimum=minimum, earlier=earlier)


def judge_sequence_training(plan: Plan, record: dict) -> Verdict:
    return _judge_matches(plan, record, "ts", "reversing digit strings",
                          "model.forward(xs) must return scores of shape ({shape[0]}, {shape[1]}, 10)",
                          "{rate:.1%} of the symbols of {n} fresh strings right ({whole:.1%} of the strings entirely)")
