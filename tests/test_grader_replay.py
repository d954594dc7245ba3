"""The trust boundary without kernels (fast): declarative test cells, the wire codec, the kernel's stripped
dlcore, the kernel runner's data-only requests, and the source checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from grader.course.release import REPO_ROOT
from grader.kernel import runner, wire
from grader.trusted import cells, source, strip

NOTEBOOKS = sorted((REPO_ROOT / "solutions").glob("*/*.ipynb")) + \
    sorted((Path(__file__).parent / "fixtures" / "mini_course" / "solutions").glob("*/*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_every_test_cell_of_every_source_notebook_is_declarative(path):
    nb = nbformat.read(str(path), as_version=4)
    answers = set()
    for c in nb.cells:
        if c.get("metadata", {}).get("nbgrader", {}).get("solution"):
            answers |= cells.defined_names(c.source)
    found = cells.test_calls(nb)
    assert found, f"{path} has no test cells"
    for gid, calls in found.items():
        assert not isinstance(calls, Exception), f"{path.name} {gid}: {calls}"
        assert calls, f"{path.name} {gid}: a test cell without checks"
        for call in calls:
            assert call.student in answers, f"{gid}: {call.student} is not defined by an answer cell"
            assert set(call.names.values()) <= answers, f"{gid}: {call.names}"


def test_every_kind_is_defined_once():
    """kinds.find takes the first module that defines plan_<kind>: two topics must never share a kind's name."""
    import re
    seen: dict[str, str] = {}
    for folder in (REPO_ROOT / "grader" / "trusted" / "plans", REPO_ROOT / "grader" / "kernel" / "records"):
        for path in sorted(folder.glob("*.py")):
            for name in re.findall(r"^def ((?:plan|judge|record)_[a-z0-9_]+)\(", path.read_text(), re.M):
                assert name not in seen, f"{name} is defined in {seen[name]} and in {path.name}"
                seen[name] = path.name


@pytest.mark.parametrize("src, why", [
    ("x = 1", "holds only calls"),
    ("checks.check_layer(Affine, 'Affine', shapes=x_test.shape)", "only a bare name or a literal"),
    ("checks.check_layer(Affine, dlcore.nn.Affine)", "only a bare name or a literal"),
    ("np.testing.assert_allclose(f(1), 2)", "only `checks.check_<kind>"),
    ("checks.check_nonexistent(f, 'f')", "no check kind"),
    ("checks.check_function(f, 'f', cases=[(lambda: 1,)])", "only a bare name or a literal"),
    ("checks.check_function(f, 'f', **opts)", "not allowed"),
    ("checks.check_function(f(), 'f')", "bare name"),
])
def test_anything_else_in_a_test_cell_is_an_authoring_error(src, why):
    with pytest.raises(cells.NotDeclarative, match=why):
        cells.parse_cell(src)


def test_a_call_is_parsed_into_kind_name_reference_literals_and_names():
    (call,) = cells.parse_cell("# c\n### BEGIN HIDDEN TESTS\n"
                               "checks.check_network_training(train, 'train', network=Net, "
                               "sizes=(64, -3, 10), lr=0.2)\n### END HIDDEN TESTS")
    assert (call.kind, call.student, call.reference) == ("network_training", "train", "train")
    assert call.options == {"network": "Net", "sizes": (64, -3, 10), "lr": 0.2} and call.names == {"network": "Net"}


def test_wire_round_trip_and_hostile_input():
    value = {"a": (np.arange(3.0), np.float32(2.5), [1, "x", None]), "b": float("nan"), "c": {1: True}}
    back = wire.decode(json.loads(json.dumps(wire.encode(value), allow_nan=False)))
    assert np.array_equal(back["a"][0], value["a"][0]) and back["a"][1].dtype == np.float32
    assert back["a"][2] == [1, "x", None] and np.isnan(back["b"]) and back["c"] == {1: True}
    assert isinstance(wire.decode(wire.encode(object())), wire.Opaque)
    with pytest.raises(ValueError):
        wire.decode({"__ndarray__": "AAAA", "dtype": "|O", "shape": [1]})
    with pytest.raises(ValueError):
        wire.decode({"__ndarray__": "AAAA", "dtype": "<f8", "shape": [4]})
    with pytest.raises(ValueError):
        wire.decode({"__reduce__": "os.system"})


def test_the_kernels_dlcore_has_no_graded_reference(tmp_path):
    import shutil

    lib = tmp_path / "lib"
    shutil.copytree(REPO_ROOT / "dlcore", lib / "dlcore")
    done = strip.strip_references(lib, {"Affine", "step", "sigmoid", "Mul", "he_normal", "numpy.square", "shopping"})
    assert {d.split(":")[1].split()[0] for d in done} == {"Affine", "step", "sigmoid", "Mul", "he_normal"}
    assert "dlcore/nn/gates.py:Mul (stub)" in done            # nobody in dlcore needs it: its code is gone
    assert "dlcore/nn/init.py:he_normal (guard)" in done      # dlcore's layers initialise with it
    assert "return x * y" not in (lib / "dlcore" / "nn" / "gates.py").read_text().split("class Mul", 1)[1][:400]
    code = ("import numpy as np, dlcore.nn as nn, dlcore.classic as c\nfrom dlcore.nn import functional as F, init\n"
            "for f in (lambda: getattr(nn, 'Aff' + 'ine')(2, 3), lambda: c.step(1.0), lambda: F.sigmoid(0.0),\n"
            "          lambda: nn.Mul(), lambda: init.he_normal((2, 3)), lambda: type('A', (nn.Affine,), {})(2, 3)):\n"
            "    try:\n        f()\n        print('ALLOWED')\n    except RuntimeError as e:\n        print(e)\n"
            "print(type(nn.Conv2D(1, 2, 3)).__name__, nn.ReLU().forward(np.array([-1.0, 2.0])).tolist())")
    out = subprocess.run([sys.executable, "-c", code], cwd=lib, capture_output=True, text=True,
                         env={"PYTHONPATH": str(lib), "PATH": "/usr/bin:/bin"}).stdout.splitlines()
    assert out[:6] == [f"dlcore's {n} is not available while grading: implement it yourself"
                       for n in ("Affine", "step", "sigmoid", "Mul", "he_normal", "Affine")], out
    # dlcore's own use of a guarded reference, and the rest of dlcore, work
    assert out[6].replace("-0.0", "0.0") == "Conv2D [0.0, 2.0]"


def test_the_kernel_runner_gets_data_only_and_names_a_missing_object(tmp_path):
    requests = {"t1": [{"kind": "function", "student": "square", "names": {},
                        "inputs": wire.encode({"cases": [[np.arange(3.0)]]})},
                       {"kind": "function", "student": "cube", "names": {}, "inputs": wire.encode({"cases": []})}]}
    (tmp_path / "req.json").write_text(json.dumps(requests))
    ns = {"square": lambda x: x * x}
    runner.install(ns, str(tmp_path / "req.json"), str(tmp_path / "rec.jsonl"))
    ns["__dlc_tests__"]("t1")
    lines = [json.loads(line) for line in (tmp_path / "rec.jsonl").read_text().splitlines()]
    assert [(e["cell"], e["call"]) for e in lines] == [("t1", 0), ("t1", 1)]
    assert np.array_equal(wire.decode(lines[0]["record"])["cases"][0]["out"], np.arange(3.0) ** 2)
    assert wire.decode(lines[1]["record"]) == {"__missing__": "cube"}
    runner._state["out"].close()


def test_the_kernels_checks_module_answers_attribute_error(monkeypatch):
    """The kernel's copy of grader.checks has no grader.kinds nor grader.trusted: any name but a check kind's
    (IPython probing ``_repr_html_``, a judge's helper like ``Verdict``) is an AttributeError, never an
    ImportError, so that hasattr() and getattr(..., default) work there."""
    import grader
    from grader import checks

    monkeypatch.delattr(grader, "kinds", raising=False)
    monkeypatch.delattr(grader, "trusted", raising=False)
    for hidden in ("grader.kinds", "grader.trusted", "grader.trusted.messages"):
        monkeypatch.setitem(sys.modules, hidden, None)
    for name in ("_repr_html_", "Verdict", "compare", "OK", "check_layer"):
        with pytest.raises(AttributeError):
            getattr(checks, name)
    assert not hasattr(checks, "_ipython_display_")


def test_source_checks_find_delegation_and_tampering():
    import ast

    from dlcore.nn import ReLU
    index = source.SourceIndex(["from dlcore.nn import ReLU\n"], [])
    assert "imported from dlcore's ReLU" in source.delegation(index, ast.Name(id="ReLU"), ReLU)
    cell = "import dlcore.nn\n\nclass ReLU:\n    def forward(self, x):\n        return dlcore.nn.ReLU().forward(x)\n"
    index = source.SourceIndex([cell], [cell])
    assert "it uses dlcore's ReLU" in source.delegation(index, ast.Name(id="ReLU"), ReLU)
    # a base class from outside dlcore is no delegation, also where the reference is not in dlcore (None)
    cell = "from abc import ABC\nclass TwoLayerNet(ABC):\n    pass\n"
    index = source.SourceIndex([cell], [cell])
    assert source.delegation(index, ast.Name(id="TwoLayerNet"), None) is None
    found = source.tampering([("cell 'x'", "import sys\nsys.modules['grader.checks'] = None\n"
                                           "from grader.kernel import runner\n__dlc_tests__ = print")], {})
    text = "; ".join(found)
    assert "sys.modules" in text and "imports grader.kernel" in text and "__dlc_tests__" in text
