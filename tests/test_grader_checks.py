"""grader.checks: right answers pass with one line, typical mistakes fail with the right message.

Every buggy layer below is a mistake students make; the test asserts the failure AND the words of
the diagnosis (quantity, error, likely cause), so a regression in the messages shows up here.
"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest

from grader import checks

# --------------------------------------------------------------------------- student layers


class Affine:
    """A correct student Affine layer (plain NumPy, not derived from dlcore)."""

    def __init__(self, n_in, n_out):
        self.params = {"W": np.zeros((n_in, n_out)), "b": np.zeros(n_out)}
        self.grads = {}

    def forward(self, x):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dy):
        self.grads["W"] = self.x.T @ dy
        self.grads["b"] = np.sum(dy, axis=0)
        return dy @ self.params["W"].T


class AffineTransposedDW(Affine):
    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["W"] = dy.T @ self.x
        return dx


class AffineTransposedSquare(Affine):
    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["W"] = (self.x.T @ dy).T.copy()
        return dx


class AffineNoBatchSum(Affine):
    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["b"] = dy
        return dx


class AffineSignFlip(Affine):
    def backward(self, dy):
        return -super().backward(dy)


class AffineWrongParamShape(Affine):
    def __init__(self, n_in, n_out):
        super().__init__(n_in, n_out)
        self.params["W"] = np.zeros((n_out, n_in))


class AffineCachedW(Affine):
    def __init__(self, n_in, n_out):
        super().__init__(n_in, n_out)
        self.W = np.ones((n_in, n_out))

    def forward(self, x):
        self.x = x
        return x @ self.W + self.params["b"]


class AffineNoReturn(Affine):
    def backward(self, dy):
        super().backward(dy)


class AffineMutates(Affine):
    def forward(self, x):
        x *= 1.0
        x[0, 0] = 0.0
        return super().forward(x)


class SoftmaxCE:
    def __init__(self):
        self.params, self.grads = {}, {}

    def forward(self, s, t):
        s = s - np.max(s, axis=1, keepdims=True)
        p = np.exp(s)
        self.p = p / np.sum(p, axis=1, keepdims=True)
        self.t = t
        return -np.mean(np.log(self.p[np.arange(len(t)), t]))

    def backward(self, dout=1.0):
        g = self.p.copy()
        g[np.arange(len(self.t)), self.t] -= 1
        return dout * g / len(self.t)


class SoftmaxCENoMean(SoftmaxCE):
    def backward(self, dout=1.0):
        return super().backward(dout) * len(self.t)


class NoisySigmoid:
    """Correct, but naive: exp overflows and it warns and prints to stderr."""

    def __init__(self):
        self.params, self.grads = {}, {}

    def forward(self, x):
        warnings.warn("student warning", RuntimeWarning, stacklevel=1)
        print("debug output on stderr", file=sys.stderr)
        self.y = 1.0 / (1.0 + np.exp(-x * 1000.0)) if False else 1.0 / (1.0 + np.exp(-x))
        np.exp(np.array([1000.0]))  # overflow warning
        return self.y

    def backward(self, dy):
        return dy * self.y * (1.0 - self.y)


class ReLUPassThrough:
    def __init__(self):
        self.params, self.grads = {}, {}

    def forward(self, x):
        return np.maximum(x, 0.0)

    def backward(self, dy):
        return dy


def _fails(fn, *args, **kw) -> str:
    with pytest.raises(AssertionError) as info:
        fn(*args, **kw)
    return str(info.value)


# --------------------------------------------------------------------------- layers


def test_correct_layer_prints_one_line(capsys):
    checks.check_layer(Affine, "Affine", args=(5, 3), shapes=((4, 5), (1, 5)))
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and out.startswith("✔ Affine:") and "dW, db" in out
    assert err == ""


def test_transposed_weight_gradient_named_with_cause():
    msg = _fails(checks.check_layer, AffineTransposedDW, "Affine", args=(5, 3))
    assert "dW" in msg and "grads['W']" in msg
    assert "shape (3, 5), expected (5, 3)" in msg
    assert "transposed" in msg and "dL/dW = Xᵀ dY" in msg


def test_transposed_square_weight_gradient_detected_by_values():
    msg = _fails(checks.check_layer, AffineTransposedSquare, "Affine", args=(4, 4), shapes=((3, 4),))
    assert "dW" in msg and "worst relative error" in msg and "at index" in msg
    assert "expected" in msg and "got" in msg
    assert "transposed (rows and columns swapped)" in msg


def test_missing_sum_over_batch_for_db():
    msg = _fails(checks.check_layer, AffineNoBatchSum, "Affine", args=(5, 3))
    assert "db" in msg and "shape (4, 3), expected (3,)" in msg
    assert "missing sum over the batch" in msg and "axis=0" in msg


def test_sign_flip():
    msg = _fails(checks.check_layer, AffineSignFlip, "Affine", args=(5, 3))
    assert "returned by backward" in msg and "sign is flipped" in msg
    assert "numerical gradient of your own forward" in msg


def test_missing_one_over_n_in_loss_gradient():
    msg = _fails(checks.check_layer, SoftmaxCENoMean, "SoftmaxCrossEntropy", shapes=((4, 3),))
    assert "missing 1/N" in msg and "N = 4" in msg and "(p − t) / N" in msg


def test_correct_loss_and_hidden_shapes(capsys):
    checks.check_layer(SoftmaxCE, "SoftmaxCrossEntropy", shapes=((4, 3), (1, 5), (7, 2)), seed=3)
    assert capsys.readouterr().out.startswith("✔ SoftmaxCE: forward, dscores")


def test_wrong_parameter_shape():
    msg = _fails(checks.check_layer, AffineWrongParamShape, "Affine", args=(5, 3))
    assert "params['W']" in msg and "shape (3, 5), expected (5, 3)" in msg and "transposed" in msg


def test_parameter_copy_outside_params_dict_is_pointed_out():
    msg = _fails(checks.check_layer, AffineCachedW, "Affine", args=(5, 3))
    assert "output of forward" in msg and "self.W" in msg and "self.params" in msg


def test_backward_without_return():
    msg = _fails(checks.check_layer, AffineNoReturn, "Affine", args=(5, 3))
    assert "is None" in msg and "return" in msg


def test_input_mutation_is_reported():
    msg = _fails(checks.check_layer, AffineMutates, "Affine", args=(5, 3))
    assert "modified its input" in msg


def test_passing_dy_through_unchanged():
    msg = _fails(checks.check_layer, ReLUPassThrough, "ReLU", shapes=((3, 4),))
    assert "returns dy unchanged" in msg and "chain rule" in msg


def test_student_exception_is_reported_kindly():
    class Broken(Affine):
        def forward(self, x):
            raise NotImplementedError()

    msg = _fails(checks.check_layer, Broken, "Affine", args=(5, 3))
    assert "forward raised NotImplementedError" in msg and "not implemented yet" in msg


def test_no_stderr_and_no_warnings_escape(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any escaping warning would raise here
        checks.check_layer(NoisySigmoid, "Sigmoid", shapes=((3, 4),))
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("✔")


def test_failure_also_writes_nothing_to_stderr(capsys):
    with pytest.raises(AssertionError):
        checks.check_layer(AffineSignFlip, "Affine", args=(5, 3))
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- delegation


def test_delegation_by_import_subclass_and_wrapping():
    from dlcore.nn.linear import Affine as Reference

    class Sub(Reference):
        pass

    class Wrapper:
        def __init__(self, n_in, n_out):
            self.inner = Reference(n_in, n_out)
            self.params, self.grads = self.inner.params, self.inner.grads

        def forward(self, x):
            return self.inner.forward(x)

        def backward(self, dy):
            return self.inner.backward(dy)

    for student, why in [(Reference, "dlcore's own Affine"), (Sub, "subclasses dlcore's Affine"),
                         (Wrapper, "calls dlcore's Affine")]:
        msg = _fails(checks.check_layer, student, "Affine", args=(5, 3))
        assert "uses dlcore's reference implementation" in msg and why in msg and "scores zero" in msg


def test_delegation_in_functions():
    from dlcore import classic

    def my_step(u):
        return classic.step(u)

    for student, why in [(classic.step, "dlcore's own step"), (my_step, "calls dlcore's step")]:
        msg = _fails(checks.check_function, student, classic.step, cases=[(np.array([-1.0, 2.0]),)])
        assert "uses dlcore's reference implementation" in msg and why in msg


def test_other_dlcore_code_is_allowed(capsys):
    from dlcore.nn.functional import sigmoid

    class MySigmoid:
        def __init__(self):
            self.params, self.grads = {}, {}

        def forward(self, x):
            self.y = sigmoid(x)  # a helper, not the Sigmoid layer under test
            return self.y

        def backward(self, dy):
            return dy * self.y * (1 - self.y)

    checks.check_layer(MySigmoid, "Sigmoid", shapes=((2, 3),))
    assert capsys.readouterr().out.startswith("✔")


# --------------------------------------------------------------------------- reference bugs cannot hide


def test_reference_bug_does_not_fail_a_correct_student(monkeypatch, capsys):
    from dlcore.nn.linear import Affine as Reference

    original = Reference.backward

    def buggy(self, dy):
        dx = original(self, dy)
        self.grads["b"] = 2 * self.grads["b"]
        return dx

    monkeypatch.setattr(Reference, "backward", buggy)
    checks.check_layer(Affine, "Affine", args=(5, 3))
    assert "disagrees with the numerical gradient" in capsys.readouterr().out
    # ... and a student who copied the bug fails although they match the reference
    class CopiedBug(Affine):
        def backward(self, dy):
            dx = super().backward(dy)
            self.grads["b"] = 2 * self.grads["b"]
            return dx

    msg = _fails(checks.check_layer, CopiedBug, "Affine", args=(5, 3))
    assert "matches dlcore's reference but not the numerical gradient" in msg


# --------------------------------------------------------------------------- functions, gates, values


def test_check_function_cases_and_in_place_updates(capsys):
    def ref_update(w, x, eta):  # updates w in place, like an optimiser
        w += eta * x

    def good(w, x, eta):
        w += eta * x

    def returns_instead(w, x, eta):
        return w + eta * x

    cases = [(np.zeros(3), np.arange(3.0), 0.5)]
    checks.check_function(good, ref_update, cases=cases, name="update")
    assert capsys.readouterr().out.startswith("✔ update: all 1 cases")
    msg = _fails(checks.check_function, returns_instead, ref_update, cases=cases, name="update")
    assert "expected None" in msg or "updated in place" in msg

    def pure_ref(x):
        return 2 * x

    def mutating(x):
        x *= 2
        return x

    msg = _fails(checks.check_function, mutating, pure_ref, cases=[(np.arange(3.0),)], name="double")
    assert "modified its argument #1 in place" in msg


def test_check_function_reports_case_index_and_values():
    def wrong_step(u):
        return (u >= 0).astype(float) * 0 + (u > 1).astype(float)

    from dlcore import classic

    msg = _fails(checks.check_function, wrong_step, classic.step, cases=[(np.array([-1.0, 0.5]),)], name="step")
    assert "step(" in msg and "case 1 of 1" in msg and "expected" in msg and "got" in msg


def test_check_gate():
    from dlcore.nn.gates import Mul

    class MyMul:
        def forward(self, x, y):
            self.x, self.y = x, y
            return x * y

        def backward(self, dout):
            return dout * self.y, dout * self.x

    class Swapped(MyMul):
        def backward(self, dout):
            return dout * self.x, dout * self.y

    class IgnoresDout(MyMul):
        def backward(self, dout):
            return self.y, self.x

    checks.check_gate(MyMul, "Mul", cases=[(100.0, 2.0), (3.0, -1.5), (0.5, 4.0)])
    assert "swapped" in _fails(checks.check_gate, Swapped, "Mul", cases=[(100.0, 2.0)])
    assert "ignores dout" in _fails(checks.check_gate, IgnoresDout, "Mul", cases=[(3.0, 2.0), (100.0, 2.0)])
    assert "uses dlcore's reference" in _fails(checks.check_gate, Mul, "Mul", cases=[(1.0, 2.0)])


def test_check_numerical_gradient(capsys):
    def central(f, x, h=1e-5):
        grad = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            old = x[idx]
            x[idx] = old + h
            fp = f(x)
            x[idx] = old - h
            fm = f(x)
            x[idx] = old
            grad[idx] = (fp - fm) / (2 * h)
        return grad

    def forward_diff(f, x, h=1e-4):
        grad = np.zeros_like(x)
        f0 = f()
        for idx in np.ndindex(*x.shape):
            old = x[idx]
            x[idx] = old + h
            grad[idx] = (f() - f0) / h
            x[idx] = old
        return grad

    def flat_only(f, x, h=1e-5):
        grad = np.zeros_like(x)
        for i in range(x.shape[0]):
            old = x[i]
            x[i] = old + h
            fp = f()
            x[i] = old - h
            fm = f()
            x[i] = old
            grad[i] = (fp - fm) / (2 * h)
        return grad

    checks.check_numerical_gradient(central)
    assert capsys.readouterr().out.startswith("✔ central")
    assert "one-sided difference" in _fails(checks.check_numerical_gradient, forward_diff)
    assert "shape (2, 3)" in _fails(checks.check_numerical_gradient, flat_only)


def test_check_value_true_accuracy(capsys):
    checks.check_value("w", np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    msg = _fails(checks.check_value, "w", np.array([-1.0, -2.0]), np.array([1.0, 2.0]), hint="look at the sign")
    assert "sign is flipped" in msg and "hint: look at the sign" in msg
    assert "XOR" in _fails(checks.check_true, "XOR", False, "one unit cannot separate XOR")
    checks.check_accuracy("digits", 0.981, 0.97)
    msg = _fails(checks.check_accuracy, "digits", 0.91, 0.97)
    assert "91.00%" in msg and "97.00%" in msg
    out = capsys.readouterr().out
    assert out.count("✔") == 2


# --------------------------------------------------------------------------- verdicts outside the kernel


def test_plan_and_record_roundtrip_through_json_give_the_same_verdict():
    plan = checks.plan_layer("Affine", args=(5, 3), shapes=((4, 5), (2, 5)), seed=7)
    record = checks.record_layer(AffineTransposedDW, plan)
    direct = checks.judge_layer(plan, record)
    plan2 = checks.from_json(checks.to_json(plan))
    record2 = checks.from_json(checks.to_json(record))
    again = checks.judge_layer(plan2, record2)
    assert not direct.ok and direct.message == again.message
    good = checks.judge_layer(plan2, checks.from_json(checks.to_json(checks.record_layer(Affine, plan))))
    assert good.ok


def test_records_are_written_when_asked(tmp_path, monkeypatch, capsys):
    path = tmp_path / "records.jsonl"
    monkeypatch.setenv(checks.RECORDS_ENV, str(path))
    checks.check_layer(Affine, "Affine", args=(5, 3))
    with pytest.raises(AssertionError):
        checks.check_function(lambda x: x, lambda x: 2 * x, cases=[(1.0,)], name="double")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [entry["check"] for entry in lines] == ["layer", "function"]
    plan = checks.from_json(json.dumps(lines[0]["plan"]))
    record = checks.from_json(json.dumps(lines[0]["record"]))
    assert checks.judge_layer(plan, record).ok


def test_plans_are_deterministic_and_seed_dependent():
    a = checks.plan_layer("Affine", args=(5, 3), seed=1)
    b = checks.plan_layer("Affine", args=(5, 3), seed=1)
    c = checks.plan_layer("Affine", args=(5, 3), seed=2)
    assert checks.to_json(a) == checks.to_json(b) != checks.to_json(c)


def test_equal_infinities_match_and_do_not_hide_other_errors():
    inf = np.inf
    assert checks.compare("x", np.array([inf, -inf, 1.0]), np.array([inf, -inf, 1.0])) is None
    assert checks.compare("x", np.array([np.nan, 2.0]), np.array([np.nan, 2.0])) is None
    msg = checks.compare("x", np.array([inf, 2.0]), np.array([inf, 1.0]))
    assert msg is not None and "index (1,)" in msg and "expected 1, got 2" in msg
    assert checks.compare("x", np.array([inf, 1.0]), np.array([1.0, 1.0])) is not None
    assert checks.compare("x", np.array([-inf]), np.array([inf])) is not None


def test_gate_and_numerical_gradient_checks_split_into_plan_record_judge():
    class MyMul:
        def forward(self, x, y):
            self.x, self.y = x, y
            return x * y

        def backward(self, dout):
            return dout * self.y, dout * self.x

    plan = checks.plan_gate("Mul", cases=[(2.0, 3.0), (1.5, -1.0, 2.0)])
    record = checks.record_gate(MyMul, plan)
    again = checks.from_json(checks.to_json(record))
    assert checks.judge_gate(checks.from_json(checks.to_json(plan)), again).ok

    def central(f, x, h=1e-5):
        grad = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            old = x[idx]
            x[idx] = old + h
            fp = f()
            x[idx] = old - h
            fm = f()
            x[idx] = old
            grad[idx] = (fp - fm) / (2 * h)
        return grad

    plan = checks.plan_numerical_gradient()
    record = checks.from_json(checks.to_json(checks.record_numerical_gradient(central, plan)))
    assert checks.judge_numerical_gradient(plan, record).ok


def test_decoding_refuses_object_arrays():
    with pytest.raises(ValueError, match="refusing"):
        checks._decode({"__ndarray__": "AAAAAAAAAAA=", "dtype": "|O", "shape": [1]})
