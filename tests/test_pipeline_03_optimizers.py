"""Chapter 3 (optimizers and training techniques) through the real pipeline: release, then autograde with one worker.

- the release contains no solution code and no hidden tests, and the committed course/ is clean too;
- the solution scores full marks with no error in any cell and no cell over the output limit (the grading time is
  printed, not asserted: no test depends on the machine's speed);
- the released notebook runs to its last cell and scores 0;
- prepared wrong submissions each lose exactly the exercise their mistake touches, with the cause in the CSV:
  Adam without bias correction; momentum with the sign of the lecture's gradient term flipped (Δw ← μΔw + εg);
  BatchNorm's backward without the mean term; dropout that does not rescale the kept units. The closing experiment's
  check trains with the grader's own gradient step, so none of these costs its points.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import grading_helpers as H  # tests/fixtures, on pytest's pythonpath
import nbformat
import pytest

from grader.course.release import REPO_ROOT, release

CHAPTER = "03_optimizers"
NOTEBOOK = "optimizers.ipynb"
pytestmark = pytest.mark.slow

# student -> [(answer cell id, text in the solution, replacement)]
MISTAKES = {
    "wrong_adam": [("adam", "            m_hat = self.m[key] / (1 - self.beta1 ** self.t)\n"
                            "            v_hat = self.v[key] / (1 - self.beta2 ** self.t)\n",
                    "            m_hat = self.m[key]\n            v_hat = self.v[key]\n")],
    "wrong_momentum": [("momentum", "self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]",
                        "self.v[key] = self.momentum * self.v[key] + self.lr * grads[key]")],
    "wrong_batchnorm": [("batchnorm",
                         "return (m * dxhat - dxhat.sum(axis=0) - self.xhat * np.sum(dxhat * self.xhat, axis=0)) "
                         "/ (m * self.std)",
                         "return (m * dxhat - self.xhat * np.sum(dxhat * self.xhat, axis=0)) / (m * self.std)")],
    "wrong_dropout": [("dropout", "self.mask = (self.rng.random(x.shape) >= self.p) / (1.0 - self.p)",
                       "self.mask = (self.rng.random(x.shape) >= self.p) * 1.0")],
}
# student -> {exercise: a phrase the CSV reason must contain}
EXPECTED = {
    "wrong_adam": {"test_adam": "the bias correction is missing"},
    "wrong_momentum": {"test_momentum": "the sign of the gradient term is flipped"},
    "wrong_batchnorm": {"test_batchnorm": "the mean term is missing"},
    "wrong_dropout": {"test_dropout": "the kept units are not scaled"},
}


def _check_release_is_clean(source, released):
    text = released.read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"{released.name}: '{marker}' left in the release"
    cells = {H.grade_id(c): c.source for c in nbformat.reads(text, as_version=4).cells}
    for gid, lines in H.secret_lines(source).items():
        for line in lines:
            assert line not in cells.get(gid, ""), f"{released.name}, cell {gid}: leaked line {line!r}"


def test_chapter_3_release_and_autograde(tmp_path):
    source = REPO_ROOT / "solutions" / CHAPTER / NOTEBOOK
    assert sorted(p.name for p in source.parent.glob("*.ipynb")) == [NOTEBOOK]
    release([CHAPTER], release_dir=tmp_path / "release")
    released = tmp_path / "release" / CHAPTER / NOTEBOOK
    _check_release_is_clean(source, released)
    _check_release_is_clean(source, REPO_ROOT / "course" / CHAPTER / NOTEBOOK)

    subs = tmp_path / "submissions"
    answers = H.student_answers(source)
    H.write(H.fill(released, answers), subs / "solution", NOTEBOOK)
    H.write(nbformat.read(str(released), as_version=4), subs / "released", NOTEBOOK)
    for student, edits in MISTAKES.items():
        override = {}
        for gid, old, new in edits:
            assert old in answers[gid], f"{gid}: the solution no longer contains {old!r}"
            override[gid] = answers[gid].replace(old, new, 1)
        H.write(H.fill(released, answers, override), subs / student, NOTEBOOK)

    workdir, csv_path = tmp_path / "work", tmp_path / "grades.csv"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", CHAPTER, str(subs), "--workers", "1", "--timeout", "300",
         "--notebook-timeout", "600", "--csv", str(csv_path), "--workdir", str(workdir)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=3000)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(proc.stdout)
    print(f"graded {len(MISTAKES) + 2} submissions in {elapsed:.1f} s with one worker")
    grades = H.read_grades(csv_path)

    sol = grades["solution"]
    assert sol["TOTAL"][0] == sol["TOTAL"][1] > 0, proc.stdout
    graded = [ex for ex in sol if ex != "TOTAL"]
    assert len(graded) >= 10 and all(sol[ex][1] > 0 for ex in graded), graded
    autograded = nbformat.read(str(workdir / "autograded" / "solution" / CHAPTER / NOTEBOOK), as_version=4)
    errors = [(i, o.get("ename")) for i, c in enumerate(autograded.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == [], f"the solution raised in cells {errors}"
    assert "OutputLimit" not in sol["TOTAL"][2], sol["TOTAL"][2]

    rel = grades["released"]
    assert rel["TOTAL"][0] == 0, proc.stdout
    assert not re.search(r"KernelDied|did not stop|wall-clock|not run", rel["TOTAL"][2])
    autograded = nbformat.read(str(workdir / "autograded" / "released" / CHAPTER / NOTEBOOK), as_version=4)
    skipped = [i for i, c in enumerate(autograded.cells)
               if c.cell_type == "code" and c.source.strip() and c.get("execution_count") is None]
    assert skipped == [], f"released: cells {skipped} did not run"

    for student, causes in EXPECTED.items():
        got = grades[student]
        lost = {ex for ex, (score, mx, _) in got.items() if ex != "TOTAL" and score < mx}
        assert lost == set(causes), f"{student}: expected to lose exactly {sorted(causes)}, lost {sorted(lost)}"
        for ex, phrase in causes.items():
            score, mx, reason = got[ex]
            assert score == 0 and phrase in reason, f"{student} / {ex}: {reason}"
