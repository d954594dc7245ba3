"""Plans and judges of chapters 1–2's kinds (trusted): gate weights, perceptron training, closing
experiments on data the plan draws (the kernel never gets test labels), and a two-layer network that is
compared with a reference network the plan builds with its OWN parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from grader.kinds import Plan
from grader.trusted.messages import Verdict, _describe, compare, refused, show_array

# --------------------------------------------------------------------------- chapter 1


def plan_gate_weights(reference: str = "mp_neuron", *, gates: Sequence[str] = ("AND", "OR", "NAND"),
                      noise: float = 0.0, repeats: int = 1, seed: int = 0) -> Plan:
    """The (w, theta) the student chose for each gate, run through dlcore's mp_neuron on the truth table
    (inputs perturbed by at most ``noise``): a wrong mp_neuron elsewhere costs nothing here."""
    from dlcore.data import logic_gate

    rng = np.random.default_rng(seed)
    tables = {}
    for name in gates:
        X, y = logic_gate(name)
        Xn = np.tile(X.astype(float), (repeats, 1)) + rng.uniform(-noise, noise, size=(4 * repeats, 2)) * (noise > 0)
        tables[name] = (Xn, np.tile(y.astype(float), repeats))
    return Plan("gate_weights", reference, {"gates": list(gates)}, {"tables": tables}, {"noise": noise})


def judge_gate_weights(plan: Plan, rec: dict) -> Verdict:
    from dlcore.classic import mp_neuron

    for name, (X, y) in plan.expected["tables"].items():
        got = rec["weights"].get(name) or {"error": "missing"}
        if got.get("error"):
            return Verdict(False, message=f"GATES[{name!r}] could not be read: {got['error']}")
        try:
            w, theta = got["value"]
            out = mp_neuron(X, np.asarray(w, dtype=float), float(theta))
        except (TypeError, ValueError) as exc:
            return Verdict(False, message=f"GATES[{name!r}] must be (w, theta) with w of two numbers: {exc}")
        problem = compare(f"{name}'s outputs" + (f" on inputs perturbed by at most {plan.info['noise']}"
                                                 if plan.info["noise"] else " for (0,0), (0,1), (1,0), (1,1)"),
                          np.asarray(out, dtype=float), y)
        if problem:
            return Verdict(False, message=f"{problem}\n  hint: draw the four inputs and your line w1 x1 + w2 x2 = "
                                          f"theta for {name}; keep every corner away from it")
    return Verdict(True, summary=f"GATES: {', '.join(plan.expected['tables'])} compute their truth tables")


def plan_perceptron_training(reference: str = "train_perceptron", *, data: str = "separable", n: int = 40,
                             margin: float = 0.2, gate: str = "XOR", seed: int = 0, eta: float = 1.0,
                             max_epochs: int = 100, update: str = "perceptron_update") -> Plan:
    """train_perceptron(X, y, eta, max_epochs) on drawn data (or a logic gate), compared with dlcore's; when
    it calls the student's ``update``, it is followed with the student's update results (one mistake, one
    exercise)."""
    from dlcore import classic
    from dlcore.data import linearly_separable, logic_gate

    X, y = linearly_separable(n, margin=margin, seed=seed) if data == "separable" else logic_gate(gate)
    X = X.astype(float)
    w, b, errors, history = classic.train_perceptron(X, y, eta, max_epochs)
    return Plan("perceptron_training", reference, {"X": X, "y": y, "eta": eta, "max_epochs": max_epochs,
                                                   "update": update},
                {"w": np.asarray(w), "b": float(b), "errors": [int(e) for e in errors], "history": len(history)},
                {"what": f"train_perceptron on {X.shape[0]} samples (eta={eta}, max_epochs={max_epochs})"})


def _follow(plan: Plan, calls: list) -> tuple[dict | None, str | None]:
    """The reference training loop, with the recorded update results in place of the update's own."""
    X, y, eta = plan.inputs["X"], plan.inputs["y"], plan.inputs["eta"]
    w, b = np.zeros(X.shape[1]), 0.0
    errors, history, k = [], [(w, b)], 0
    for _ in range(plan.inputs["max_epochs"]):
        mistakes = 0
        for i in range(X.shape[0]):
            mistakes += int((1.0 if float(np.dot(w, X[i]) + b) > 0 else 0.0) != y[i])
            if k >= len(calls):
                return None, f"it called {plan.inputs['update']} {len(calls)} times, expected more (one per sample)"
            args = list(calls[k]["args"]) + list(calls[k]["kwargs"].values())
            want = [w, b, X[i], y[i], eta]
            if len(args) < 4 or compare("", args[:4], want[:4]) is not None:
                return None, (f"call {k + 1} of {plan.inputs['update']} got the arguments {args[:5]!r}, expected "
                              f"(w, b, x, y, eta) = ({show_array(np.asarray(w))}, {b}, {show_array(X[i])}, {y[i]}, "
                              f"{eta})")
            try:
                w, b = np.asarray(calls[k]["result"][0], dtype=float), float(np.asarray(calls[k]["result"][1]))
            except (TypeError, ValueError, IndexError):
                return None, f"{plan.inputs['update']} returned {_describe(calls[k]['result'])}, expected (w, b)"
            k += 1
        errors.append(mistakes)
        history.append((w, b))
        if mistakes == 0:
            break
    if k != len(calls):
        return None, f"it called {plan.inputs['update']} {len(calls)} times, expected {k} (one per sample and epoch)"
    return {"w": w, "b": b, "errors": errors, "history": len(history)}, None


def judge_perceptron_training(plan: Plan, rec: dict) -> Verdict:
    what = plan.info["what"]
    if bad := refused(rec, plan.reference, what):
        return bad
    expected, note = plan.expected, ""
    if rec["calls"] and not rec.get("truncated"):
        expected, why = _follow(plan, rec["calls"])
        if why:
            return Verdict(False, message=f"{what}: {why}")
        note = " (followed with your update)"
    out = rec["out"]
    if not isinstance(out, (tuple, list)) or len(out) != 4:
        return Verdict(False, message=f"{what}: expected (w, b, errors, history), got {_describe(out)}")
    w, b, errors, history = out
    problem = compare("mistakes per epoch", np.asarray(errors, dtype=float), np.asarray(expected["errors"], float)) \
        or compare("final w", np.asarray(w, dtype=float), np.asarray(expected["w"], dtype=float)) \
        or compare("final b", float(np.asarray(b)), float(expected["b"]))
    if problem is None and (not isinstance(history, (list, tuple)) or len(history) != expected["history"]):
        problem = (f"history: expected {expected['history']} (w, b) pairs (initial + one per epoch), got "
                   f"{_describe(history)}")
    if problem:
        return Verdict(False, message=f"{what}{note}:\n- {problem}\n  hint: samples in the given order, from w = 0, "
                                      "b = 0; stop after an epoch without mistakes")
    return Verdict(True, summary=f"{what}: {len(expected['errors'])} epoch(s), weights and mistakes match{note}")


def plan_softmax_fit(reference: str = "fit_softmax_regression", *, train_seed: int = 0, test_seed: int = 1,
                     n_train: int = 300, n_test: int = 300, std: float = 0.8, minimum: float = 0.95,
                     loss_halves: bool = False) -> Plan:
    """The closing experiment: the student's fit on drawn clusters; the plan keeps the test labels and the
    judge measures the accuracy of argmax(X W + b)."""
    from dlcore.data import blobs

    X, y = blobs(n_train, centers=3, std=std, seed=train_seed)
    Xt, yt = blobs(n_test, centers=3, std=std, seed=test_seed)
    return Plan("softmax_fit", reference, {"X": X.astype(float), "y": y, "n_classes": 3},
                {"X_test": Xt.astype(float), "y_test": yt},
                {"minimum": minimum, "loss_halves": loss_halves, "what": f"softmax regression on three clusters "
                 f"(std {std}, {n_test} test points)"})


def _accuracy_verdict(what: str, acc: float, minimum: float) -> Verdict:
    if acc < minimum:
        return Verdict(False, message=(f"{what}: accuracy {acc:.2%} is below the required {minimum:.2%}. Check the "
                                       "earlier exercises first (a wrong gradient often still trains, only worse), "
                                       "then the learning rate and the number of iterations."))
    return Verdict(True, summary=f"{what}: accuracy {acc:.2%} ≥ {minimum:.2%}")


def _halves(what: str, losses: Any) -> Verdict | None:
    try:
        first, last = float(losses[0]), float(losses[-1])
    except (TypeError, ValueError, IndexError, KeyError):
        return Verdict(False, message=f"{what}: expected the list of training losses, got {_describe(losses)}")
    if not last < 0.5 * first:
        return Verdict(False, message=f"{what}: the training loss went from {first:.3f} to {last:.3f}; expected it "
                                      "at least to halve")
    return None


def judge_softmax_fit(plan: Plan, rec: dict) -> Verdict:
    what = plan.info["what"]
    if bad := refused(rec, plan.reference, what):
        return bad
    out = rec["out"]
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        return Verdict(False, message=f"{what}: fit must return (W, b, losses), got {_describe(out)}")
    W, b, losses = out
    Xt, yt = plan.expected["X_test"], plan.expected["y_test"]
    try:
        pred = np.argmax(Xt @ np.asarray(W, dtype=float) + np.asarray(b, dtype=float), axis=1)
    except (TypeError, ValueError) as exc:
        return Verdict(False, message=f"{what}: W of shape {np.shape(W)} and b of shape {np.shape(b)} cannot "
                                      f"score inputs of shape {Xt.shape} ({exc})")
    if plan.info["loss_halves"] and (bad := _halves(what, losses)):
        return bad
    return _accuracy_verdict(what, float(np.mean(pred == yt)), plan.info["minimum"])


# --------------------------------------------------------------------------- chapter 2


def plan_network(reference: str = "TwoLayerNet", *, sizes: Sequence[int] = (6, 5, 3), n: int = 4,
                 seed: int = 0) -> Plan:
    """A two-layer network (Affine, ReLU, Affine, softmax cross-entropy) built by the student, with the
    plan's OWN parameters loaded into ``net.params``: loss and every gradient are compared with dlcore's
    layers on the same parameters, and dW1 also with central differences."""
    from dlcore import nn
    from dlcore.gradcheck import numerical_gradient

    n_in, n_h, n_out = (int(s) for s in sizes)
    r = np.random.default_rng(1000 + seed)
    params = {"W1": r.normal(size=(n_in, n_h)) * 0.5, "b1": r.normal(size=n_h) * 0.3,
              "W2": r.normal(size=(n_h, n_out)) * 0.5, "b2": r.normal(size=n_out) * 0.3}
    x, t = r.normal(size=(n, n_in)), r.integers(0, n_out, size=n)
    a1, relu, a2, sce = (nn.Affine(n_in, n_h, dtype="float64"), nn.ReLU(), nn.Affine(n_h, n_out, dtype="float64"),
                         nn.SoftmaxCrossEntropy())
    a1.params.update(W=params["W1"].copy(), b=params["b1"].copy())
    a2.params.update(W=params["W2"].copy(), b=params["b2"].copy())

    def loss() -> float:
        return float(sce.forward(a2.forward(relu.forward(a1.forward(x))), t))

    value = loss()
    a1.backward(relu.backward(a2.backward(sce.backward())))
    grads = {"W1": a1.grads["W"], "b1": a1.grads["b"], "W2": a2.grads["W"], "b2": a2.grads["b"]}
    numeric = numerical_gradient(loss, a1.params["W"])
    return Plan("network", reference, {"sizes": [n_in, n_h, n_out], "seed": seed, "params": params, "x": x, "t": t},
                {"loss": value, "grads": grads, "numeric_W1": numeric},
                {"what": f"a {n_in}-{n_h}-{n_out} network on {n} samples (seed {seed})", "n": n})


def judge_network(plan: Plan, rec: dict) -> Verdict:
    what = plan.info["what"]
    if bad := refused(rec, plan.reference, what):
        return bad
    want = {k: list(v.shape) for k, v in plan.inputs["params"].items()}
    if rec["param_shapes"] != want:
        return Verdict(False, message=f"{what}: net.params must hold {want}, got {rec['param_shapes']}")
    if not rec["kept"]:
        return Verdict(False, message=(f"{what}: the parameters the checker loaded into net.params were not there "
                                       "after gradient(x, t): keep the network's parameters in net.params and use "
                                       "them (e.g. the layers share the arrays of net.params)"))
    grads = rec["grads"]
    problem = compare("the loss", rec["loss"], plan.expected["loss"], rtol=1e-7) or (
        None if isinstance(grads, dict) else
        f"gradient(x, t) must return (loss, grads) with grads a dict, got {_describe(grads)}")
    for name in ("W1", "b1", "W2", "b2"):
        problem = problem or compare(f"dL/d{name}", grads.get(name), plan.expected["grads"][name], rtol=1e-6,
                                     batch=plan.info["n"], quantity=f"dL/d{name}")
    problem = problem or compare("dL/dW1 against central differences", grads["W1"], plan.expected["numeric_W1"],
                                 rtol=1e-5)
    if problem:
        return Verdict(False, message=f"{what}, parameters loaded by the checker:\n- {problem}\n  hint: backward "
                                      "through loss_layer, then the layers in reverse order")
    return Verdict(True, summary=f"{what}: loss and dW1, db1, dW2, db2 match dlcore's layers on the same parameters")


def plan_network_training(reference: str = "train", *, network: str = "TwoLayerNet",
                          sizes: Sequence[int] = (64, 100, 10), data_seed: int = 1, net_seed: int = 0,
                          n_train: int | None = None, minimum: float | None = None, loss_halves: bool = False,
                          **options: Any) -> Plan:
    """The closing experiment: a fresh student network trained by the student's train on the digits (drawn
    with ``data_seed``); the kernel predicts the test inputs, the judge measures the accuracy with the
    labels it kept. ``options`` go to train (epochs, batch_size, lr, seed)."""
    from dlcore.data import load_digits

    d = load_digits(seed=data_seed, dtype="float64")
    x, t = (d.x_train, d.t_train) if n_train is None else (d.x_train[:n_train], d.t_train[:n_train])
    return Plan("network_training", reference, {"sizes": list(sizes), "net_seed": net_seed, "x": x, "t": t,
                                        "x_test": d.x_test, "options": dict(options)},
                {"t_test": d.t_test},
                {"minimum": minimum, "loss_halves": loss_halves, "epochs": options.get("epochs"),
                 "what": f"a {'-'.join(map(str, sizes))} network trained by train on {len(x)} digits"})


def judge_network_training(plan: Plan, rec: dict) -> Verdict:
    what = plan.info["what"]
    if bad := refused(rec, plan.reference, what):
        return bad
    hist, epochs = rec["history"], plan.info["epochs"]
    if epochs is not None and (not isinstance(hist, (list, tuple)) or len(hist) != epochs):
        return Verdict(False, message=f"{what}: train must return one loss per epoch: expected {epochs} values, got "
                                      f"{_describe(hist)}")
    if plan.info["loss_halves"] and (bad := _halves(what, hist)):
        return bad
    pred = np.asarray(rec["predicted"])
    if pred.shape != plan.expected["t_test"].shape:
        return Verdict(False, message=f"{what}: net.predict must give one row of scores per test image, got "
                                      f"{_describe(rec['predicted'])}")
    if plan.info["minimum"] is None:
        return Verdict(True, summary=f"{what}: one loss per epoch, and the loss at least halves")
    return _accuracy_verdict(f"{what} (test set)", float(np.mean(pred == plan.expected["t_test"])),
                             plan.info["minimum"])
