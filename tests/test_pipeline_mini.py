"""The grading pipeline end to end on a 3-exercise mini course (tests/fixtures/mini_course), through real nbgrader.

Release: reproducible byte for byte, no solutions or hidden tests, check-sync catches drift.
Batch autograding (two workers, sandboxed kernels, trusted replay of the tests): one batch with a
correct, a wrong, a blank, a hanging (interrupt honoured, then a raise), a hanging-and-swallowing-the-
interrupt, an os._exit, a corrupt and a missing submission completes; every submission keeps the
points of the cells that ran, with a clear reason. A submission whose worker is killed (when its journal
shows the stuck cell started: an event, not a clock) is scored from the journal; the batch's wall-clock
limit stops a submission that never ends. (Hostile submissions: tests/test_adversarial.py.)

Exercises: double_test 1 point, relu_test 2 points, square_test 3 points (6 in all).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grading_helpers as H  # tests/fixtures, on pytest's pythonpath
import nbformat
import pytest
import waiting as W

from grader.course.release import REPO_ROOT, check_sync
from grader.trusted import autograde as ag

MINI, SOURCE_NB = H.MINI, H.MINI_SOURCE
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mini_root(tmp_path_factory) -> Path:
    """A copy of the mini course root with its release in course/ (made like `python -m grader release`)."""
    return H.release_copy(MINI, tmp_path_factory.mktemp("mini") / "course_root")


@pytest.fixture(scope="module")
def mini_release(mini_root) -> Path:
    return mini_root / "course" / "mini" / "mini.ipynb"


def test_release_is_reproducible_clean_and_checked(tmp_path, mini_root, mini_release):
    text = mini_release.read_text(encoding="utf-8")
    assert text.endswith("}\n") and json.loads(text)["nbformat"] == 4
    nb = nbformat.reads(text, as_version=4)
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    H.check_release_is_clean(SOURCE_NB, mini_release)
    assert "HIDDEN-MARKER" not in text
    assert "raise NotImplementedError()" in next(c.source for c in nb.cells if H.grade_id(c) == "relu_impl")
    # releasing never writes a gradebook or other nbgrader folders into the course root
    assert sorted(p.name for p in mini_root.iterdir()) == ["course", "solutions"]

    # a second release (inside check_sync) is byte-for-byte the same as the first
    assert check_sync(source_root=mini_root) == []
    drifted = tmp_path / "drifted"
    shutil.copytree(mini_root, drifted)
    target = drifted / "course" / "mini" / "mini.ipynb"
    target.write_text(text.replace("Three tiny exercises", "Three small exercises"), encoding="utf-8")
    (drifted / "course" / "mini" / "stray.txt").write_text("not from the release\n")
    proc = subprocess.run([sys.executable, "-m", "grader", "check-sync", "--course-root", str(drifted)],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "course/mini/mini.ipynb: differs" in proc.stdout
    assert "course/mini/stray.txt: not produced by the release" in proc.stdout


HANG = "import time\nwhile True:\n    time.sleep(0.05)\n"
SWALLOW = ("import time\nwhile True:\n    try:\n        time.sleep(0.05)\n"
           "    except KeyboardInterrupt:\n        pass  # the student's code handles the interrupt\n")


def _submissions(release_nb: Path, folder: Path) -> dict[str, Path]:
    answers = H.student_answers(SOURCE_NB)
    wrong_relu = answers["relu_impl"].replace("return np.where(self.mask, dy, 0.0)", "return dy")
    assert wrong_relu != answers["relu_impl"]
    cases = {
        "correct": {},
        "wrong_relu": {"relu_impl": wrong_relu},
        "hang_then_raise": {"relu_impl": HANG, "square_impl": "raise ValueError('a bug in my code')"},
        "hang_swallowing_interrupt": {"relu_impl": SWALLOW},
        "os_exit": {"relu_impl": "import os\nos._exit(1)"},
    }
    paths = {name: H.write(H.fill(release_nb, answers, over), folder / name, "mini.ipynb")
             for name, over in cases.items()}
    shutil.copytree(release_nb.parent, folder / "blank")  # the released notebook as is
    paths["blank"] = folder / "blank" / "mini.ipynb"
    (folder / "corrupt").mkdir()
    (folder / "corrupt" / "mini.ipynb").write_text('{"cells": [')  # a notebook broken in an editor
    (folder / "no_notebook").mkdir()
    return paths


def test_batch_survives_hang_raise_and_dead_kernel(tmp_path, mini_release):
    subs = tmp_path / "submissions"
    _submissions(mini_release, subs)
    # The hangs run until the 20 s cell limit stops them; every other cell (setup imports included) needs well
    # under a second, so a loaded machine has a 20x margin before a correct cell could be cut off.
    grades, workdir, out = H.autograde("mini", subs, tmp_path, feedback=True, options=(
        "--course-root", str(MINI), "--timeout", "20", "--notebook-timeout", "300", "--workers", "2"))
    totals = {s: g["TOTAL"][0] for s, g in grades.items()}
    assert totals == {"correct": 6, "wrong_relu": 4, "blank": 0, "hang_then_raise": 1,
                      "hang_swallowing_interrupt": 1, "os_exit": 1, "corrupt": 0, "no_notebook": 0}, out
    assert all(g["TOTAL"][1] == 6 for g in grades.values())

    # the wrong layer loses exactly its exercise, with the diagnosis in the reason and the feedback
    assert grades["wrong_relu"]["relu_test"][:2] == (0, 2)
    assert "returns dy unchanged" in grades["wrong_relu"]["relu_test"][2]
    feedback = (workdir / "feedback" / "wrong_relu" / "mini" / "mini.html").read_text(encoding="utf-8")
    assert "returns dy unchanged" in feedback and "chain rule" in feedback

    # a plain hang is interrupted at the cell limit; later cells still run (square raised on its own)
    g = grades["hang_then_raise"]
    assert g["double_test"][0] == 1 and g["relu_test"][0] == 0 and g["square_test"][0] == 0
    assert "ReLU is not defined: define ReLU in" in g["relu_test"][2]  # the missing name, not a NameError
    assert "time limit (20 s) and was interrupted" in out and "a bug in my code" in out

    # a hang that swallows the interrupt: the kernel is stopped, earlier points stay, the rest is "not run"
    g = grades["hang_swallowing_interrupt"]
    assert g["double_test"][0] == 1 and g["relu_test"][0] == 0 and g["square_test"][0] == 0
    assert "hung and the kernel was stopped" in g["relu_test"][2]
    assert "did not stop when interrupted" in g["TOTAL"][2]

    # os._exit kills the kernel: the cells that ran keep their points, the reason says what happened
    g = grades["os_exit"]
    assert g["double_test"][0] == 1 and g["square_test"][0] == 0
    assert "kernel died in an earlier cell" in g["square_test"][2]
    assert "the kernel died while running this cell" in g["TOTAL"][2]

    # the released notebook runs to the end (no dead kernel, no timeout) and scores 0
    assert all("not run" not in reason and "kernel" not in reason for _, _, reason in grades["blank"].values())
    assert "not implemented yet" in grades["blank"]["double_test"][2]

    # unreadable or missing notebooks score 0 with the reason, and do not stop the batch
    assert "NotJSONError" in grades["corrupt"]["double_test"][2]
    assert grades["no_notebook"]["square_test"][2] == "mini.ipynb was not submitted"

    # the table and the feedback cover every student; the repository was not written to
    for student in grades:
        assert student in out
        if student not in ("corrupt", "no_notebook"):
            assert (workdir / "feedback" / student / "mini" / "mini.html").exists()
    assert "double_test" in out and "6/6" in out and "Why points were lost" in out
    assert not (MINI / "gradebook.db").exists() and not (REPO_ROOT / "gradebook.db").exists()


def test_killed_worker_is_scored_from_its_journal(tmp_path):
    """The last resort: a submission's worker dies (here: killed by the test) while a cell swallows every
    interrupt; another worker rebuilds the notebook from the journal and the kernel's records, and the finished
    cells keep their points. The kill is triggered by an event, not a clock: as soon as the journal shows that
    the stuck cell started (so double_test has finished). The cell and notebook limits (600 s) never fire first.
    (The submission is the source notebook filled in: the grader uses the source's locked cells either way.)"""
    subs, work = tmp_path / "submissions", tmp_path / "work"
    H.write(H.fill(SOURCE_NB, H.student_answers(SOURCE_NB), {"relu_impl": SWALLOW}), subs / "stuck", "mini.ipynb")
    stuck, graded = H.cell_index(SOURCE_NB, "relu_impl"), H.cell_index(SOURCE_NB, "double_test")
    lines: list[str] = []
    done: dict[str, ag.BatchResult] = {}
    runner = threading.Thread(target=lambda: done.update(batch=ag.autograde(
        "mini", subs, source_root=MINI, timeout=600, notebook_timeout=600, workdir=work, echo=lines.append,
        workers=1, progress=False)))
    runner.start()
    journal = work / "journal" / "stuck" / "mini" / "mini.jsonl"
    events = W.wait_for(lambda: [e for e in W.journal_events(journal) if e.get("event") == "run"
                                 and e.get("index") == stuck], what="the stuck cell to start", alive=runner)
    assert any(e.get("event") == "cell" and e["index"] == graded for e in W.journal_events(journal)), events
    workers = W.children("grader.trusted.worker")
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGKILL)
    runner.join(timeout=900)
    assert not runner.is_alive()
    result = done["batch"].by_student()["stuck"]
    assert result.status is ag.Outcome.GRADED
    scores = {e.exercise: (e.score, e.reason) for e in result.exercises}
    assert scores["double_test"] == (1, "")
    assert scores["relu_test"][0] == 0 and "not run: the grader's worker for this submission died" in \
        scores["relu_test"][1]
    assert scores["square_test"][0] == 0
    assert result.notes[0].startswith("the grader's worker for this submission died (exit -9")
    autograded = nbformat.read(str(work / "autograded" / "stuck" / "mini" / "mini.ipynb"), as_version=4)
    stopped = [c for c in autograded.cells if H.grade_id(c) == "relu_impl"][0]
    assert stopped.outputs[-1]["ename"] == "GraderStopped"


def test_wall_clock_limit_stops_a_submission_that_never_ends(tmp_path):
    """The batch's own wall-clock limit (counted from the kernel's start) kills a worker whose first exercise
    swallows every interrupt. Whatever the machine's speed, nothing can pass before the limit (the first
    exercise never finishes), so the outcome is exact: 0 points, the limit in the note."""
    subs = tmp_path / "submissions"
    H.write(H.fill(SOURCE_NB, H.student_answers(SOURCE_NB), {"double_impl": SWALLOW}), subs / "stuck", "mini.ipynb")
    batch = ag.autograde("mini", subs, source_root=MINI, timeout=600, notebook_timeout=600, wall_limit=5,
                         workdir=tmp_path / "work", echo=lambda _: None, progress=False)
    result = batch.by_student()["stuck"]
    assert result.status is ag.Outcome.GRADED and result.score == 0
    assert result.notes[0] == "the autograder stopped this submission at its wall-clock limit (5 s)"
    assert all(e.reason.startswith("not run: the autograder stopped this submission") for e in result.exercises)
