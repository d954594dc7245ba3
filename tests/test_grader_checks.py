"""grader.checks: right answers pass with one line, typical mistakes fail with the right message.

Every buggy layer below is a mistake students make; the test asserts the failure AND the words of
the diagnosis (quantity, error, likely cause), so a regression in the messages shows up here.
"""

from __future__ import annotations

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
    """Correct, but chatty: it warns (UserWarning) and prints to stderr."""

    def __init__(self):
        self.params, self.grads = {}, {}

    def forward(self, x):
        warnings.warn("student warning", UserWarning, stacklevel=1)
        print("debug output on stderr", file=sys.stderr)
        self.y = 1.0 / (1.0 + np.exp(-x))
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

    # in a notebook the object itself is checked (a wrapper is refused at grading: the kernel's dlcore has no
    # Affine, and the source scan names it; see test_adversarial.py)
    del Wrapper
    for student, why in [(Reference, "is defined in dlcore"), (Sub, "inherits from dlcore.nn.linear.Affine")]:
        msg = _fails(checks.check_layer, student, "Affine", args=(5, 3))
        assert "uses dlcore's reference implementation" in msg and why in msg and "scores zero" in msg


def test_delegation_in_functions():
    from dlcore import classic

    def my_step(u):
        return classic.step(u)

    del my_step
    for student, why in [(classic.step, "is defined in dlcore (dlcore.classic)")]:
        msg = _fails(checks.check_function, student, "step", cases=[([-1.0, 2.0],)])
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


def test_a_broken_topic_module_costs_only_its_own_kinds(tmp_path, monkeypatch, capsys):
    import grader.trusted.plans as plans
    from grader import kinds
    from grader.trusted import cells

    (tmp_path / "zz_broken.py").write_text("def plan_broken(reference):\n    return (\n")  # a syntax error
    monkeypatch.setattr(plans, "__path__", [*plans.__path__, str(tmp_path)])
    kinds._modules.cache_clear()
    kinds.find.cache_clear()
    try:
        checks.check_function(lambda u: (u > 0).astype(u.dtype), "step", cases=[([-1.0, 2.0],)])
        assert capsys.readouterr().out.startswith("✔")
        why = r"grader\.trusted\.plans\.zz_broken failed to import \(SyntaxError"
        with pytest.raises(AttributeError, match=why):
            checks.check_broken  # noqa: B018 - the attribute access is the test
        with pytest.raises(cells.NotDeclarative, match=f"no check kind 'broken'.*{why}"):
            cells.parse_cell("checks.check_broken(f, 'f')")
        with pytest.raises(AttributeError, match="has no attribute 'check_nothing'$"):
            checks.check_nothing  # noqa: B018 - a kind no module defines: no module is blamed
        # the kernel's runner skips a broken record module the same way (its other records still load)
        import grader.kernel.records as records
        from grader.kernel import runner

        monkeypatch.setattr(records, "__path__", [*records.__path__, str(tmp_path)])
        modules, broken = runner.import_modules("grader.kernel.records")
        assert list(broken) == ["grader.kernel.records.zz_broken"] and "SyntaxError" in broken[list(broken)[0]]
        assert "grader.kernel.records.core" in {m.__name__ for m in modules}
    finally:
        monkeypatch.undo()
        kinds._modules.cache_clear()
        kinds.find.cache_clear()


# --------------------------------------------------------------------------- issue 11: what the checks forbid


def test_a_bool_step_fails_in_the_dtype_of_u():
    msg = _fails(checks.check_function, lambda u: u > 0, "step", cases=[([-2.0, -0.5, 0.0, 1e-9, 3.0],)])
    assert "has dtype bool, expected float64" in msg and "dtype of its input" in msg
    assert "1e-09" in msg  # the input is printed with enough digits, whatever np.set_printoptions says


def test_an_overflowing_sigmoid_fails_with_its_warning():
    msg = _fails(checks.check_function, lambda u: 1 / (1 + np.exp(-u)), "sigmoid", cases=[([-1000.0, 1000.0],)])
    assert "RuntimeWarning: overflow encountered in exp" in msg


def test_function_outputs_are_named_and_one_over_n_is_recognised():
    from dlcore import classic

    def lr_grad(w, b, X, t):
        loss, dw, db = classic.logistic_regression_gradient(w, b, X, t)
        return loss, dw * X.shape[0], db

    msg = _fails(checks.check_function, lr_grad, "logistic_regression_gradient", outputs=["loss", "dw", "db"],
                 cases=[({"normal": [2], "seed": 1}, 0.3, {"normal": [6, 2], "seed": 2}, [1.0, 0, 1, 1, 0, 1])])
    assert "dw does not match" in msg and "a missing 1/N" in msg and "N = 6" in msg and "result[" not in msg


def test_a_failed_check_shows_the_message_alone_in_ipython():
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_cell("from grader import checks\nimport numpy as np")
    shell.run_cell("def step(u):\n    return u > 0")
    with capture_output_of(shell) as out:
        shell.run_cell('checks.check_function(step, "step", cases=[([1.0, -1.0],)])')
    text = out.getvalue()
    assert "CheckFailed: step([1.0, -1.0])" in text and "kinds.py" not in text and "Traceback" not in text


class capture_output_of:  # noqa: N801 - a context manager
    def __init__(self, shell):
        import io
        self.shell, self.buf = shell, io.StringIO()

    def __enter__(self):
        import contextlib
        self.ctx = contextlib.redirect_stdout(self.buf)
        self.ctx.__enter__()
        return self.buf

    def __exit__(self, *exc):
        self.ctx.__exit__(*exc)


def test_a_sign_error_in_the_update_does_not_fail_train_perceptron():
    from dlcore import classic

    ns: dict = {"np": np}
    exec("def perceptron_update(w, b, x, y, eta=1.0):\n"  # noqa: S102 - a student's notebook, in miniature
         "    pred = 1.0 if np.dot(w, x) + b > 0 else 0.0\n"
         "    return w - eta * (y - pred) * x, b - eta * (y - pred)\n", ns)
    exec("def train_perceptron(X, y, eta=1.0, max_epochs=100):\n"  # noqa: S102
         "    w, b = np.zeros(X.shape[1]), 0.0\n    errors, history = [], [(w, b)]\n"
         "    for _ in range(max_epochs):\n        m = 0\n        for x_n, y_n in zip(X, y):\n"
         "            m += int((1.0 if np.dot(w, x_n) + b > 0 else 0.0) != y_n)\n"
         "            w, b = perceptron_update(w, b, x_n, y_n, eta)\n"
         "        errors.append(m)\n        history.append((w, b))\n        if m == 0:\n            break\n"
         "    return w, b, errors, history\n", ns)
    _fails(checks.check_function, ns["perceptron_update"], "perceptron_update",
           cases=[([0.0, 0.0], 0.0, [1.0, 2.0], 1, 1.0)])
    checks.check_perceptron_training(ns["train_perceptron"], "train_perceptron", data="gate", gate="NAND", eta=0.5,
                                     max_epochs=20)
    assert classic.train_perceptron  # the reference is still what a correct update is compared with


# --------------------------------------------------------------------------- hole 4: a network that computes nothing


class _ZeroNet:
    """A fake: params of zeros, and gradient() returns the closed form at zero weights whatever is loaded."""

    def __init__(self, n_in, n_hidden, n_out, rng=None):
        self.sizes = (n_in, n_hidden, n_out)

    @property
    def params(self):
        n_in, n_h, n_out = self.sizes
        return {"W1": np.zeros((n_in, n_h)), "b1": np.zeros(n_h), "W2": np.zeros((n_h, n_out)), "b2": np.zeros(n_out)}

    def gradient(self, x, t):
        n_in, n_h, n_out = self.sizes
        p = np.full((len(t), n_out), 1.0 / n_out)
        p[np.arange(len(t)), t] -= 1
        return float(np.log(n_out)), {"W1": np.zeros((n_in, n_h)), "b1": np.zeros(n_h),
                                      "W2": np.zeros((n_h, n_out)), "b2": p.sum(0) / len(t)}


def test_a_network_that_computes_nothing_fails():
    msg = _fails(checks.check_network, _ZeroNet, "TwoLayerNet", sizes=(6, 5, 3), n=4, seed=0)
    assert "the parameters the checker loaded into net.params were not there" in msg

    class Stored(_ZeroNet):  # keeps the loaded parameters but still computes at zero weights
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self._p = _ZeroNet.params.fget(self)

        params = property(lambda self: self._p)

    msg = _fails(checks.check_network, Stored, "TwoLayerNet", sizes=(6, 5, 3), n=4, seed=0)
    assert "the loss does not match" in msg


def test_an_output_note_is_not_listed_as_a_lost_point():
    from pathlib import Path

    from grader.trusted import autograde as ag

    full = ag.StudentResult("chatty", [ag.ExerciseResult("test_step", 1, 1)],
                            notes=["perceptron, cell 20: OutputLimit: output exceeded 256 kB"])
    text = ag.format_table(ag.BatchResult("01_perceptron", Path("."), [full]))
    assert "Why points were lost" not in text and "Notes on submissions:" in text and "OutputLimit" in text
