"""grader.replay / grader.recorder without Jupyter: rewriting test cells, replaying them on records, delegation
and tampering found in the source, safe decoding. (The same machinery end to end: tests/test_adversarial.py.)

The "kernel" here is a namespace in this process: the rewritten cell runs there with grader.recorder
installed, then the trusted replay runs the cell again from the records only.
"""

from __future__ import annotations

import ast
import json

import numpy as np
import pytest

from grader import checks, recorder
from grader import replay as rp

TRUSTED = {"np", "checks"}
ALIASES = {"np": "numpy", "checks": "grader.checks"}


def _kernel(cell: rp.RewrittenCell, student: str, path, setup: str = "") -> str | None:
    ns: dict = {}
    exec("import numpy as np\nfrom grader import checks\n" + setup, ns)
    recorder.install(ns, str(path))
    try:
        exec(student, ns)
        exec(cell.source, ns)
        return None
    except BaseException as exc:  # noqa: BLE001 - the kernel may fail in any way
        return type(exc).__name__
    finally:
        checks._EMITTER = None
        recorder._state["fh"].close()
        recorder._state["fh"] = None


def _grade(test: str, student: str, tmp_path, *, edit=None, setup: str = "", defs=None):
    cell = rp.rewrite_cell(test, TRUSTED, check_aliases=ALIASES)
    path = tmp_path / "records.jsonl"
    path.unlink(missing_ok=True)
    _kernel(cell, student, path, setup)
    if edit is not None:
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps(e) + "\n" for e in edit(lines)))
    index = rp.SourceIndex([student], [student, test])
    ns = {"np": np, "checks": checks}
    return rp.replay_cell(cell, rp.Records.from_file(str(path)), ns,
                          delegation=lambda s, r: rp.delegation(index, s, r))


TEST = '''checks.check_function(double, lambda x: 2 * x, cases=[(np.arange(3.0),), (1.5,)], name="double")
_r = np.random.default_rng(3)
_x = _r.normal(size=4)
checks.check_value("double of random numbers", double(_x), 2 * _x)
'''


def test_rewrite_wraps_exactly_the_student_expressions():
    cell = rp.rewrite_cell(TEST + "for _k in range(2):\n    _y = double(_x)[_k] + _x[_k]\n", TRUSTED,
                           check_aliases=ALIASES)
    kinds = sorted((s.kind, s.text) for s in cell.sites.values())
    assert ("check", 'checks.check_function(double, lambda x: 2 * x, cases=[(np.arange(3.0),), (1.5,)], '
                     "name='double')") in kinds
    assert ("call", "double(_x)") in kinds and ("val", "double") in kinds
    assert not any("_r." in text or text.startswith("_x") for _, text in kinds)   # the test's own values
    assert {"_r", "_x", "_k"} <= cell.defined and cell.tainted == {"_y"}
    ast.parse(cell.source)  # valid Python for the kernel


def test_taint_follows_assignments_functions_and_comprehensions():
    src = '''def _helper(layer, n):
    return layer.forward(np.ones(n))

net = Net(3)
out = _helper(net, 3)
grads = {k: v.copy() for k, v in net.params.items()}
ok = [i for i in range(3)]
'''
    cell = rp.rewrite_cell(src, TRUSTED)
    texts = {s.text for s in cell.sites.values()}
    assert "layer.forward(np.ones(n))" in texts          # parameter tainted by its call site
    assert "Net(3)" in texts and "net.params.items()" in texts and "v.copy()" in texts
    assert "i" not in texts and "range(3)" not in texts
    assert {"net", "out", "grads"} <= cell.tainted and "ok" in cell.defined


def test_replay_passes_and_fails_like_the_notebook(tmp_path):
    good = _grade(TEST, "def double(x):\n    return 2 * x\n", tmp_path)
    assert good.ok and good.stdout.count("✔") == 2
    bad = _grade(TEST, "def double(x):\n    return 2 * x if np.size(x) < 4 else 3 * x\n", tmp_path)
    assert not bad.ok and bad.error[0] == "AssertionError"
    assert "double of random numbers does not match" in bad.error[1] and "constant factor of 1.5" in bad.error[1]


def test_changed_arguments_are_detected(tmp_path):
    def other_numbers(lines):
        for e in lines:
            if "args" in e and "p0" in e["args"]:
                e["args"]["p0"] = json.loads(json.dumps(recorder.encode(np.zeros(4))))
        return lines

    res = _grade(TEST, "def double(x):\n    return 2 * x\n", tmp_path, edit=other_numbers)
    assert not res.ok and "was called with other arguments in your notebook" in res.error[1]


def test_changed_check_inputs_are_detected(tmp_path):
    def other_cases(lines):
        for e in lines:
            if e.get("check") == "function":
                e["plan"]["data"]["cases"][0]["args"] = [recorder.encode(np.ones(3))]
        return lines

    res = _grade(TEST, "def double(x):\n    return 2 * x\n", tmp_path, edit=other_cases)
    assert not res.ok and "inputs this check used inside your notebook differ" in res.error[1]


def test_missing_records_mean_the_test_did_not_get_that_far(tmp_path):
    res = _grade(TEST, "def double(x):\n    return 2 * x\n", tmp_path,
                 edit=lambda lines: [e for e in lines if "args" not in e])
    assert not res.ok and "did not get as far as `double(_x)`" in res.error[1]
    res = _grade(TEST, "def double(x):\n    return 2 * x\n", tmp_path,
                 edit=lambda lines: [e for e in lines if "check" not in e])
    assert not res.ok and "this check did not run in your notebook" in res.error[1]


def test_student_exceptions_keep_their_type(tmp_path):
    test = '''try:
    double(-1.0)
    raised = False
except ValueError:
    raised = True
checks.check_true("double rejects negative numbers", raised, "expected a ValueError")
'''
    ok = _grade(test, "def double(x):\n    if x < 0:\n        raise ValueError('negative')\n    return 2 * x\n",
                tmp_path)
    assert ok.ok, ok.error
    res = _grade("double(1.0)\n", "def double(x):\n    return undefined_name\n", tmp_path)
    assert not res.ok and res.error[0] == "NameError" and "`double(1.0)` raised NameError" in res.error[1]


def test_layers_and_partial_credit(tmp_path):
    relu = '''class ReLU:
    def __init__(self):
        self.params, self.grads = {}, {}
    def forward(self, x):
        self.mask = x > 0
        return np.where(self.mask, x, 0.0)
    def backward(self, dy):
        return np.where(self.mask, dy, 0.0)
'''
    res = _grade('checks.check_layer(ReLU, "ReLU", shapes=((3, 4),))\n0.5', relu, tmp_path)
    assert res.ok and res.result == 0.5
    res = _grade('checks.check_layer(ReLU, "ReLU", shapes=((3, 4),))',
                 relu.replace("np.where(self.mask, dy, 0.0)", "dy"), tmp_path)
    assert not res.ok and "returns dy unchanged" in res.error[1]


def test_delegation_is_decided_from_the_source(tmp_path):
    import dlcore.nn

    def why(student_src, name="ReLU", reference=dlcore.nn.ReLU, others=()):
        index = rp.SourceIndex([student_src], [student_src, *others])
        return rp.delegation(index, ast.Name(name), reference)

    assert "dlcore's own ReLU" in why("from dlcore.nn import ReLU")
    assert "dlcore's own ReLU" in why("import dlcore.nn as L\nReLU = L.ReLU")
    assert "subclasses dlcore's ReLU" in why("from dlcore.nn import ReLU as R\nclass ReLU(R):\n    pass")
    helper = "from dlcore import nn\ndef _make():\n    return nn.ReLU()\nclass ReLU:\n    def __init__(self):\n" \
             "        self.inner = _make()"
    assert "it uses dlcore's ReLU" in why(helper)
    assert "cannot follow" in why("class ReLU:\n    def forward(self, x):\n        return __import__('dlcore')")
    assert "finds no definition" in why("globals()['ReLU'] = 1")
    assert why("from dlcore.nn.functional import relu\nclass ReLU:\n    def forward(self, x):\n"
               "        return relu(x)") is None  # other parts of dlcore are allowed
    assert why("from dlcore.nn.base import Layer\nclass ReLU(Layer):\n    pass") is None
    # the reference imported by a locked cell (e.g. a test cell) is recognised too
    assert "dlcore's step" in why("def step(u):\n    return classic.step(u)", "step", __import__(
        "dlcore.classic", fromlist=["x"]).step, others=("from dlcore import classic",))


@pytest.mark.parametrize("source, flagged", [
    ("%matplotlib inline\nimport numpy as np\nx = np.random.default_rng(0).normal(size=3)", None),
    ("plt_params = {}\ndef f(F):\n    F = 2\n    return F", None),
    ("!ls\nx = 1", "a shell command"),
    ("import subprocess\nsubprocess.run(['python', '-c', '1'])", "imports subprocess"),
    ("import os\nos.system('python -c 1')", "`os.system` (starts another process)"),
    ("%%writefile helper.py\nx = 1", "the magic %writefile"),
    ("import numpy as np\nnp.random.seed(0)\nimport matplotlib.pyplot as plt\nplt.rcParams['figure.dpi'] = 90", None),
    ("checks.check_value('x', 1, 1)", None),
    ("import numpy.testing as npt\nnpt.assert_allclose = None", "changes `npt.assert_allclose`"),
    ("import sys\nsys.modules['numpy'] = None", "sys.modules"),
    ("checks.check_layer = print", "changes `checks.check_layer`"),
    ("checks = None", "rebinds `checks`"),
    ("from grader import recorder", "imports grader.recorder"),
    ("x = eval('1')", "`eval`"),
    ("get_ipython().events.register('pre_run_cell', print)", "`.events`"),
    ("%run other.py", "the magic %run"),
    ("import my_helpers", "not part of the course environment"),
    ("__dlc_val__ = print", "`__dlc_val__`"),
    ("import inspect", "imports inspect"),
    ("def f():\n    import sys\n    return sys._getframe(1).f_globals", "`._getframe`"),
])
def test_tampering_is_found_in_the_source(source, flagged):
    found = rp.tampering([("cell", source)], ALIASES)
    if flagged is None:
        assert found == []
    else:
        assert any(flagged in f for f in found), found


def test_decoding_records_is_safe():
    good = recorder.encode({"a": (np.arange(3.0), 1.5, float("nan")), 2: [b"x", "y"]})
    back = rp.decode(json.loads(json.dumps(good)))
    assert np.array_equal(back["a"][0], np.arange(3.0)) and np.isnan(back["a"][2]) and back[2] == [b"x", "y"]
    with pytest.raises(ValueError, match="refusing"):
        rp.decode({"__ndarray__": "AAAAAAAAAAA=", "dtype": "|O", "shape": [1]})
    with pytest.raises(ValueError, match="does not match"):
        rp.decode({"__ndarray__": "AAAA", "dtype": "<f8", "shape": [10**12]})
    opaque = rp.decode(recorder.encode(object()))
    assert isinstance(opaque, rp.Opaque)
    with pytest.raises(rp.ReplayError):
        opaque.forward(1)
    assert rp.decode(recorder.encode(np.float64(2.5))).shape == ()


def test_records_survive_broken_lines(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"site": 1, "value": 3}\nnot json\n{"site": "x"}\n{"site": 1, "nested": true, "value": 4}\n'
                    '{"site": 1, "value": 5}\n{"site": 2, "val')
    records = rp.Records.from_file(str(path))
    assert [records.take(1)["value"], records.take(1)["value"], records.take(1)] == [3, 5, None]
    assert records.broken == 3
