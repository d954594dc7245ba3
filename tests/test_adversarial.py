"""Adversarial submissions: one batch of ~30 hostile or unlucky submissions of the mini course, graded in
parallel through the real pipeline (sandboxed kernels, trusted replay of the tests, one gradebook writer).

Each test asserts the exact outcome of one submission: its score per exercise, the reason in the CSV /
feedback, and that the batch (and every other student's grades) was not affected. The mini course has
three exercises: double_test 1 point, relu_test 2 points (dlcore reference ``ReLU``), square_test 3 points.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import grading_helpers as H  # tests/fixtures, on pytest's pythonpath
import nbformat
import pytest

from grader.course.release import REPO_ROOT
from grader.trusted import autograde as ag
from grader.trusted import sandbox

MINI = Path(__file__).parent / "fixtures" / "mini_course"
SOURCE_NB = MINI / "solutions" / "mini" / "mini.ipynb"
pytestmark = pytest.mark.slow

CAPS = sandbox.probe()

WRONG_SQUARE = "def square(x):\n    return x * 3\n"
SWALLOW = ("import time\nwhile True:\n    try:\n        time.sleep(0.05)\n"
           "    except KeyboardInterrupt:\n        pass\n")
DELEGATE_CALL = """import dlcore.nn

class ReLU:
    def __init__(self):
        self.inner = dlcore.nn.ReLU()
        self.params, self.grads = {}, {}

    def forward(self, x):
        return self.inner.forward(x)

    def backward(self, dy):
        return self.inner.backward(dy)
"""
PROBE = """import os
targets = {paths!r}
leaked, wrote = [], []
for p in targets["read"] + targets["read_if_hidden"]:
    try:
        with open(p, "rb") as fh:
            fh.read(10)
        leaked.append(p)
    except Exception:
        pass
    try:
        os.listdir(p)
        leaked.append(p)
    except Exception:
        pass
for p in targets["write"]:
    try:
        with open(p, "ab") as fh:
            fh.write(b"x")
        wrote.append(p)
    except Exception:
        pass
print("LEAKED:", leaked)
print("WROTE:", wrote)
"""
FORK_BOMB = """import os, time
started = 0
try:
    for i in range(300):
        pid = os.fork()
        if pid == 0:
            try:
                os.execv("/bin/sleep", ["sleep", "1234.5"])
            finally:
                os._exit(0)
        started += 1
finally:
    print("started", started)
"""
SNOOP = """import linecache, traceback

def double(x):
    print("IN:", In)
    print("STACK:", traceback.format_stack())
    print("LINES:", [linecache.getline(f, n) for f, n, *_ in traceback.extract_stack()])
    return 2 * x
"""
WALK = """import os
found = []
for top in ("/", "/work", "/root", "/home", "/tmp", "/srv", "/opt"):
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if (root != "/" or d not in ("proc", "sys", "dev")) and d != "site-packages"]
        for f in files:
            if f.endswith(".ipynb") or "solutions" in root:
                try:
                    found.append((os.path.join(root, f), open(os.path.join(root, f), errors="replace").read()))
                except OSError:
                    pass
print("WALK:", [p for p, _ in found])
print("CONTENT:", [c for _, c in found])
"""
OBFUSCATED = """import sys
import dlcore.nn

getattr(sys, "setpro" + "file")(None)
ReLU = getattr(dlcore.nn, "Re" + "LU")
"""
NETWORK = """import socket
try:
    s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
    s.sendall(b"hello")
    print("NET: open")
except OSError as exc:
    print("NET: blocked", type(exc).__name__)
"""


def _nb_with(overrides: dict[str, str] | None = None, after: dict[str, list[str]] | None = None, mutate=None):
    """The released notebook, solved correctly, with solution cells replaced and code cells added."""
    answers = H.student_answers(SOURCE_NB)
    nb = H.fill(_nb_with.release, answers, overrides or {})
    for gid, sources in (after or {}).items():
        idx = next(i for i, c in enumerate(nb.cells) if H.grade_id(c) == gid)
        for k, src in enumerate(sources):
            nb.cells.insert(idx + 1 + k, nbformat.v4.new_code_cell(src))
    if mutate is not None:
        mutate(nb)
    return nb


def _edit_locked(nb):
    cells = {H.grade_id(c): c for c in nb.cells}
    cells["relu_test"].source = "pass  # no test here"
    cells["double_test"].metadata["nbgrader"].update(points=100, grade=False)
    nb.cells.remove(cells["square_test"])
    fake = nbformat.v4.new_code_cell("print('✔ everything passes')")
    fake.metadata["nbgrader"] = {"grade": True, "grade_id": "relu_test", "locked": True, "points": 2,
                                 "schema_version": 3, "solution": False, "task": False}
    nb.cells.append(fake)


class _Listener:
    """A TCP server on 127.0.0.1 that records whether anybody connected (the sandbox must not reach it)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.connected = False
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.connected = True
                conn.close()
            except OSError:
                continue

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("adversarial")
    course = root / "course_root"
    shutil.copytree(MINI, course)
    proc = subprocess.run([sys.executable, "-m", "grader", "release", "--course-root", str(course)],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _nb_with.release = course / "course" / "mini" / "mini.ipynb"
    subs, work = root / "submissions", root / "work"
    listener = _Listener()
    paths = {
        # the work directory (hidden tests, gradebook, other submissions and results): 0700, another uid
        "read": [str(work / "solutions" / "mini" / "mini.ipynb"), str(work / "gradebook.db"),
                 str(work / "submitted" / "correct" / "mini" / "mini.ipynb"), str(work / "results"),
                 str(sandbox.base_dir() / "uids"), str(sandbox.base_dir()), "/root"],
        # world-readable places (the checkout, the instructor's course root): hidden by the mount namespace
        "read_if_hidden": [str(course / "solutions" / "mini" / "mini.ipynb"), str(SOURCE_NB),
                           str(REPO_ROOT / "solutions" / "02_backprop" / "backprop.ipynb"),
                           str(subs / "correct" / "mini.ipynb")],
        "write": [str(work / "gradebook.db"), str(work / "course" / "mini" / "x.txt"),
                  str(work / "results" / "correct.json"), str(work / "autograded" / "correct" / "mini" / "x.txt"),
                  str(REPO_ROOT / "course" / "x.txt"), str(subs / "correct" / "x.txt"),
                  str(course / "course" / "mini" / "x.txt")],
    }
    cases = {
        "correct": _nb_with(),
        "patch_numpy_testing": _nb_with({"square_impl": WRONG_SQUARE}, {"square_impl": [
            "import numpy.testing as npt\nnpt.assert_allclose = lambda *a, **k: None\n"
            "np.allclose = lambda *a, **k: True\nnp.array_equal = lambda *a, **k: True"]}),
        "patch_numpy_hidden": _nb_with({"square_impl": WRONG_SQUARE}, {"square_impl": [
            "import math\nm, t = np, getattr(np, 'testing')\nsetattr(t, 'assert_allclose', lambda *a, **k: None)\n"
            "setattr(m, 'allclose', lambda *a, **k: True)\nsetattr(m, 'abs', lambda x: 0 * x)\n"
            "mm = math\nsetattr(mm, 'isfinite', lambda x: True)"]}),
        "import_reference": _nb_with({"relu_impl": "from dlcore.nn import ReLU\n"}),
        "call_reference": _nb_with({"relu_impl": DELEGATE_CALL}),
        "subclass_reference": _nb_with({"relu_impl": "from dlcore.nn import ReLU as _R\n\n"
                                                     "class ReLU(_R):\n    pass\n"}),
        "read_and_write_outside": _nb_with(after={"double_impl": [PROBE.format(paths=paths)]}),
        "output_50mb_line": _nb_with({"double_impl": H.student_answers(SOURCE_NB)["double_impl"]
                                      + "\nprint('x' * 50_000_000)\n"}),
        "stderr_warnings": _nb_with({
            "double_impl": "import sys, warnings\n\ndef double(x):\n    warnings.warn('deprecated, but fine')\n"
                           "    print('debug output', file=sys.stderr)\n    return 2 * x\n",
            "square_impl": "import sys\nprint('a note on stderr', file=sys.stderr)\n\ndef square(x):\n"
                           "    return x * x\n"}),
        "kernel_dies": _nb_with({"relu_impl": "import os\nos._exit(1)"}),
        "hang_swallows_interrupt": _nb_with({"relu_impl": SWALLOW}),
        "infinite_loop": _nb_with({"relu_impl": "while True:\n    pass"}),
        "infinite_loop_in_test": _nb_with({"square_impl": "def square(x):\n    while True:\n        pass\n"}),
        "memory_exhaustion": _nb_with({"relu_impl": "big = np.ones((60_000, 60_000))\n"}),
        "memory_growth": _nb_with(after={"square_impl": [
            "hog = []\ntry:\n    while True:\n        hog.append(np.empty(100 * 2**20, dtype=np.uint8))\n"
            "finally:\n    hog = None"]}),
        "fork_bomb": _nb_with(after={"square_impl": [FORK_BOMB]}),
        "disk_fill": _nb_with(after={"double_impl": [
            "with open('big.bin', 'wb') as fh:\n    for _ in range(200):\n        fh.write(b'\\0' * 2**20)"]}),
        "delete_files": _nb_with(after={"double_impl": [
            "import os, shutil\nfor p in os.listdir('.'):\n"
            "    shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.remove(p)\n"
            "for p in os.listdir('..'):\n    shutil.rmtree(os.path.join('..', p), ignore_errors=True)"
        ]}),
        "binary_garbage": _nb_with(after={"double_impl": [
            "import os, sys\nprint(bytes(range(256)).decode('latin-1') * 20)\nprint('\\x00\\x1b[2J\\ud800 lone')\n"
            "os.write(1, bytes(range(256)) * 50)\nsys.stdout.write('\\udcff\\n')"]}),
        "sys_exit": _nb_with({"square_impl": "import sys\n\ndef square(x):\n    return x * x\n\nsys.exit(3)\n"}),
        "os_exit_in_test": _nb_with({"square_impl": "import os\n\ndef square(x):\n    os._exit(1)\n"}),
        "keyboard_interrupt": _nb_with({"double_impl": "def double(x):\n    raise KeyboardInterrupt\n"}),
        "recursion": _nb_with({"square_impl": "def square(x):\n    return square(x)\n"}),
        "sys_modules": _nb_with({"double_impl": "def double(x):\n    return x\n"}, {"double_impl": [
            "import sys, types\nfake = types.ModuleType('grader.checks')\n"
            "fake.check_function = lambda *a, **k: print('✔ fine')\nsys.modules['grader.checks'] = fake\n"]}),
        "patch_check_helpers": _nb_with({"relu_impl": "class ReLU:\n    pass\n"}, {"relu_impl": [
            "checks.check_layer = lambda *a, **k: print('✔ ReLU: all good')"]}),
        "patch_check_helpers_hidden": _nb_with({"relu_impl": "class ReLU:\n    pass\n"}, {"relu_impl": [
            "c = checks\nsetattr(c, 'check_layer', lambda *a, **k: print('✔ ReLU: all good'))\n"
            "setattr(c, 'judge_layer', lambda *a, **k: c.Verdict(True, 'fine'))"]}),
        "detects_grading": _nb_with({"square_impl": (
            "import os\nGRADED = os.environ.get('HOME', '').startswith('/tmp/dlcourse') or os.getuid() != 0\n\n"
            "def square(x):\n    return x * 3 if GRADED else x * x\n\nif GRADED:\n    c = checks\n"
            "    setattr(c, 'check_value', lambda *a, **k: None)\n")}),
        "edits_locked_cells": _nb_with({"relu_impl": "class ReLU:\n    pass\n"}, mutate=_edit_locked),
        "forges_records": _nb_with({"relu_impl": "class ReLU:\n    pass\n"}, {"relu_impl": [
            "import grader.recorder as r\nr._state['fh'].write('{\"site\": 4}\\n')"]}),
        "network": _nb_with(after={"double_impl": [NETWORK.format(port=listener.port)]}),
        "hidden_via_history": _nb_with({"double_impl": SNOOP}, {"relu_impl": [
            "print('IN:', In)\n%history -n\nimport traceback\nprint(traceback.format_stack())"]}),
        "solutions_walk": _nb_with(after={"square_impl": [WALK]}),
        "obfuscated_delegation": _nb_with({"relu_impl": OBFUSCATED}),
        "blank": H.fill(_nb_with.release, {}),
    }
    for name, nb in cases.items():
        H.write(nb, subs / name, "mini.ipynb")
    csv_path = root / "grades.csv"
    lines: list[str] = []
    try:
        result = ag.autograde("mini", subs, source_root=MINI, timeout=6, notebook_timeout=60, workdir=work,
                              feedback=True, csv_path=csv_path, workers=2, echo=lines.append, progress=False)
    finally:
        listener.close()
    grades = H.read_grades(csv_path)
    return {"result": result, "grades": grades, "work": work, "out": "\n".join(lines), "listener": listener,
            "subs": subs, "paths": paths}


def _scores(batch, student):
    g = batch["grades"][student]
    return {k: v[0] for k, v in g.items() if k != "TOTAL"}, g["TOTAL"][0]


def _autograded(batch, student):
    return nbformat.read(str(batch["work"] / "autograded" / student / "mini" / "mini.ipynb"), as_version=4)


def _outputs_text(nb):
    texts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            texts.append(str(o.get("text", "")) + str(o.get("evalue", "")))
    return "\n".join(texts)


FULL = {"double_test": 1, "relu_test": 2, "square_test": 3}


def test_batch_completed_for_everyone(batch):
    res = batch["result"].by_student()
    assert len(res) == len(batch["grades"]) == 34
    assert all(s.status == "graded" for s in res.values()), {s: r.status for s, r in res.items()}
    assert _scores(batch, "correct") == (FULL, 6)
    assert _scores(batch, "blank")[1] == 0
    assert "Why points were lost" in batch["out"]


def test_monkeypatching_numpy_testing_is_tampering(batch):
    scores, total = _scores(batch, "patch_numpy_testing")
    assert total == 0
    reason = batch["grades"]["patch_numpy_testing"]["square_test"][2]
    assert "Tampering" in reason and "npt.assert_allclose" in reason and "np.allclose" in reason


def test_hidden_monkeypatching_cannot_change_a_verdict(batch):
    scores, total = _scores(batch, "patch_numpy_hidden")
    assert scores == {"double_test": 1, "relu_test": 2, "square_test": 0}
    assert "does not match" in batch["grades"]["patch_numpy_hidden"]["square_test"][2]


@pytest.mark.parametrize("student, why", [("import_reference", "dlcore's own ReLU"),
                                          ("call_reference", "it uses dlcore's ReLU"),
                                          ("subclass_reference", "subclasses dlcore's ReLU")])
def test_delegating_to_the_reference_scores_zero_for_that_exercise(batch, student, why):
    scores, total = _scores(batch, student)
    assert scores == {"double_test": 1, "relu_test": 0, "square_test": 3}
    reason = batch["grades"][student]["relu_test"][2]
    assert "uses dlcore's reference implementation" in reason and why in reason and "scores zero" in reason


@pytest.mark.skipif(not (CAPS.drop_uid or CAPS.mountns), reason="the kernel runs as the grader's user, unhidden")
def test_hidden_tests_gradebook_and_other_students_are_out_of_reach(batch):
    assert _scores(batch, "read_and_write_outside") == (FULL, 6)
    text = _outputs_text(_autograded(batch, "read_and_write_outside"))
    leaked = eval(text.split("LEAKED:", 1)[1].splitlines()[0])  # noqa: S307 - the probe's own output
    allowed = set() if CAPS.mountns else set(batch["paths"]["read_if_hidden"])  # only permissions without mounts
    assert set(leaked) <= allowed and "WROTE: []" in text
    work = batch["work"]
    assert not (work / "course" / "mini" / "x.txt").exists() and not (REPO_ROOT / "course" / "x.txt").exists()
    assert not (batch["subs"] / "correct" / "x.txt").exists()
    assert json.loads((work / "results" / "correct.json").read_text())["student"] == "correct"


def test_a_50mb_line_is_cut_and_costs_nothing_here(batch):
    assert _scores(batch, "output_50mb_line") == (FULL, 6)
    path = batch["work"] / "autograded" / "output_50mb_line" / "mini" / "mini.ipynb"
    assert path.stat().st_size < 1_000_000
    feedback = batch["work"] / "feedback" / "output_50mb_line" / "mini" / "mini.html"
    assert feedback.stat().st_size < 2_000_000
    assert "output exceeded 256 kB" in batch["grades"]["output_50mb_line"]["TOTAL"][2]


def test_warnings_and_stderr_from_correct_code_cost_nothing(batch):
    assert _scores(batch, "stderr_warnings") == (FULL, 6)


def test_kernel_death_keeps_the_points_earned_before(batch):
    assert _scores(batch, "kernel_dies") == ({"double_test": 1, "relu_test": 0, "square_test": 0}, 1)
    g = batch["grades"]["kernel_dies"]
    assert "kernel died in an earlier cell" in g["square_test"][2] and "kernel" in g["TOTAL"][2]


def test_hang_that_swallows_the_interrupt(batch):
    assert _scores(batch, "hang_swallows_interrupt") == ({"double_test": 1, "relu_test": 0, "square_test": 0}, 1)
    g = batch["grades"]["hang_swallows_interrupt"]
    assert "hung and the kernel was stopped" in g["relu_test"][2]
    assert "did not stop when interrupted" in g["TOTAL"][2]


def test_infinite_loops_with_and_without_interrupt_handling(batch):
    assert _scores(batch, "infinite_loop") == ({"double_test": 1, "relu_test": 0, "square_test": 3}, 4)
    assert "ReLU" in batch["grades"]["infinite_loop"]["relu_test"][2]
    assert _scores(batch, "infinite_loop_in_test") == ({"double_test": 1, "relu_test": 2, "square_test": 0}, 3)
    assert "time limit (6 s)" in batch["grades"]["infinite_loop_in_test"]["square_test"][2]


def test_memory_exhaustion(batch):
    assert _scores(batch, "memory_exhaustion") == ({"double_test": 1, "relu_test": 0, "square_test": 3}, 4)
    total = batch["grades"]["memory_exhaustion"]["TOTAL"][2]
    assert "MemoryError" in total and "memory limit" in total
    assert _scores(batch, "memory_growth") == (FULL, 6)
    assert "MemoryError" in batch["grades"]["memory_growth"]["TOTAL"][2]


@pytest.mark.skipif(not CAPS.drop_uid, reason="RLIMIT_NPROC counts the grader's own processes here")
def test_bounded_fork_bomb(batch):
    # Starting processes is refused from the source (another process could write forged records), so the
    # notebook never runs; the process limit itself is tested in test_sandbox_limits.py.
    assert _scores(batch, "fork_bomb") == ({"double_test": 0.0, "relu_test": 0.0, "square_test": 0.0}, 0.0)
    assert "starts another process" in batch["grades"]["fork_bomb"]["TOTAL"][2]
    leftovers = subprocess.run(["pgrep", "-f", "sleep 1234.5"], capture_output=True, text=True).stdout.split()
    assert leftovers == []


def test_disk_filling_stops_at_the_file_size_limit(batch):
    assert _scores(batch, "disk_fill") == (FULL, 6)
    assert "File too large" in batch["grades"]["disk_fill"]["TOTAL"][2]


def test_deleting_the_working_directory(batch):
    assert _scores(batch, "delete_files") == (FULL, 6)


def test_binary_garbage_output(batch):
    assert _scores(batch, "binary_garbage") == (FULL, 6)
    assert (batch["work"] / "feedback" / "binary_garbage" / "mini" / "mini.html").exists()


def test_sys_exit_and_os_exit(batch):
    assert _scores(batch, "sys_exit") == (FULL, 6)
    assert _scores(batch, "os_exit_in_test") == ({"double_test": 1, "relu_test": 2, "square_test": 0}, 3)
    assert "kernel died" in batch["grades"]["os_exit_in_test"]["square_test"][2]


def test_keyboard_interrupt_raised_by_the_student(batch):
    assert _scores(batch, "keyboard_interrupt") == ({"double_test": 0, "relu_test": 2, "square_test": 3}, 5)
    assert "KeyboardInterrupt" in batch["grades"]["keyboard_interrupt"]["double_test"][2]


def test_recursion_overflow(batch):
    assert _scores(batch, "recursion") == ({"double_test": 1, "relu_test": 2, "square_test": 0}, 3)
    assert "RecursionError" in batch["grades"]["recursion"]["square_test"][2]


def test_modifying_sys_modules_and_patching_the_grader(batch):
    for student in ("sys_modules", "patch_check_helpers", "forges_records"):
        assert _scores(batch, student)[1] == 0, student
        assert "Tampering" in batch["grades"][student]["double_test"][2]
    assert "sys.modules" in batch["grades"]["sys_modules"]["double_test"][2]
    assert "checks.check_layer" in batch["grades"]["patch_check_helpers"]["relu_test"][2]


def test_patching_the_grader_unseen_cannot_fake_a_pass(batch):
    assert _scores(batch, "patch_check_helpers_hidden") == ({"double_test": 1, "relu_test": 0, "square_test": 3}, 4)
    # the test cells do not call the helpers in the kernel any more: the record runs the student's (empty) class
    assert "forward raised AttributeError" in batch["grades"]["patch_check_helpers_hidden"]["relu_test"][2]


def test_detecting_the_grading_environment_does_not_help(batch):
    assert _scores(batch, "detects_grading") == ({"double_test": 1, "relu_test": 2, "square_test": 0}, 3)


def test_locked_cells_are_restored_from_the_source(batch):
    assert _scores(batch, "edits_locked_cells") == ({"double_test": 1, "relu_test": 0, "square_test": 3}, 4)
    nb = _autograded(batch, "edits_locked_cells")
    tests = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    assert [H.grade_id(c) for c in tests] == ["double_test", "relu_test", "square_test"]
    assert "check_layer(ReLU" in tests[1].source


@pytest.mark.skipif(not CAPS.netns, reason="no network namespaces on this machine")
def test_network_is_off(batch):
    assert _scores(batch, "network") == (FULL, 6)
    assert "NET: blocked" in _outputs_text(_autograded(batch, "network"))
    assert not batch["listener"].connected


def test_reasons_reach_the_feedback_and_the_gradebook_is_right_for_everyone(batch):
    for student, words in [("import_reference", "uses dlcore&#39;s reference implementation"),
                           ("patch_numpy_testing", "Tampering"), ("kernel_dies", "kernel died"),
                           ("infinite_loop_in_test", "time limit")]:
        html = (batch["work"] / "feedback" / student / "mini" / "mini.html").read_text(encoding="utf-8")
        assert words in html or words.replace("&#39;", "'") in html, student
    from nbgrader.api import Gradebook

    from grader.course.release import ensure_scripts_on_path

    ensure_scripts_on_path()
    with Gradebook(f"sqlite:///{batch['work'] / 'gradebook.db'}", "dlcourse") as gb:
        stored = {student: {cell: gb.find_grade(cell, "mini", "mini", student).auto_score for cell in FULL}
                  for student in batch["grades"]}
    assert stored["correct"] == FULL and len(stored) == 34
    for student, g in batch["grades"].items():
        assert {k: v[0] for k, v in g.items() if k != "TOTAL"} == stored[student], student


def test_feedback_shows_visible_tests_and_results_never_hidden_source(batch):
    html = (batch["work"] / "feedback" / "patch_numpy_hidden" / "mini" / "mini.html").read_text(encoding="utf-8")
    assert "numpy.square" in html                    # the visible test's source
    assert "does not match" in html                   # the student's result
    assert "HIDDEN-MARKER" not in html and "BEGIN HIDDEN TESTS" not in html
    assert "&quot;seed&quot;: 6" not in html and '"seed": 6' not in html  # a hidden test's source line


def _feedback_and_outputs(batch, student):
    html = (batch["work"] / "feedback" / student / "mini" / "mini.html").read_text(encoding="utf-8")
    return html + _outputs_text(_autograded(batch, student)) + batch["grades"][student]["TOTAL"][2]


def _assert_no_hidden_line(text):
    for gid, lines in H.secret_lines(SOURCE_NB).items():
        for line in lines:
            if "BEGIN SOLUTION" in line or "return" in line or "self." in line or "def " in line:
                continue  # solution lines: the student's own code may well contain them
            assert line not in text, (gid, line)
    assert "HIDDEN-MARKER" not in text and "BEGIN HIDDEN TESTS" not in text
    assert '"seed": 6' not in text and "&quot;seed&quot;: 6" not in text


def test_hidden_tests_never_enter_the_kernel(batch):
    """Hole 2a: In, %history, the stack and linecache inside the student's own code show no test source."""
    assert _scores(batch, "hidden_via_history") == (FULL, 6)
    text = _feedback_and_outputs(batch, "hidden_via_history")
    assert "__dlc_tests__" in text  # what the kernel executed for a test cell: a data-only call
    _assert_no_hidden_line(text)


def test_a_file_walk_finds_no_solutions(batch):
    """Hole 2b: the sandbox root is an allow-list: no checkout, course root or work directory exists inside."""
    assert _scores(batch, "solutions_walk") == (FULL, 6)
    text = _outputs_text(_autograded(batch, "solutions_walk"))
    walked = eval(text.split("WALK:", 1)[1].splitlines()[0])  # noqa: S307 - the probe's own output
    if CAPS.mountns:
        assert walked == []
    _assert_no_hidden_line(_feedback_and_outputs(batch, "solutions_walk"))


def test_obfuscated_delegation_finds_no_reference(batch):
    """Hole 3: getattr(dlcore.nn, "Re" + "LU") with the profiler switched off: the kernel's dlcore has no ReLU."""
    assert _scores(batch, "obfuscated_delegation") == ({"double_test": 1, "relu_test": 0, "square_test": 3}, 4)
    reason = batch["grades"]["obfuscated_delegation"]["relu_test"][2]
    # the kernel's ReLU is the stub that raises "not available while grading"; it is still dlcore's class
    assert "ReLU uses dlcore's reference implementation: ReLU is defined in dlcore (dlcore.nn.activations)" in reason
    _assert_no_hidden_line(_feedback_and_outputs(batch, "obfuscated_delegation"))
