"""The real chapters through the real pipeline: release, then autograde a class of three.

Per chapter, one batch (``python -m grader autograde``, so the command line is what is tested):
- the solution (the released notebook filled with the solution cells) scores full marks and runs
  without a single error;
- the released notebook as is runs to its last cell without crashing and scores 0;
- chapter 2: a submission whose Affine layer stores a transposed weight gradient loses exactly
  the exercises that depend on that layer (the Affine test, the two-layer network, the training
  run), and its feedback HTML carries the checker's diagnosis.
The release itself contains no solution code and no hidden tests.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grading_helpers as H  # tests/fixtures, on pytest's pythonpath
import nbformat
import pytest

from grader.course.release import REPO_ROOT, release

CHAPTERS = ["01_perceptron", "02_backprop"]
pytestmark = pytest.mark.slow

_W_GRAD = re.compile(r"""(self\.grads\[(["'])W\2\]\s*=\s*)([^\n#]+?)(\s*(#.*)?)$""", re.MULTILINE)


def _source_notebooks(chapter: str) -> list[Path]:
    notebooks = sorted((REPO_ROOT / "solutions" / chapter).glob("*.ipynb"))
    if not notebooks:
        pytest.skip(f"solutions/{chapter}/ has no notebook yet (the chapter is still being written)")
    return notebooks


def _check_release_is_clean(source: Path, released: Path) -> None:
    text = released.read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"{released.name}: '{marker}' left in the release"
    cells = {H.grade_id(c): c.source for c in nbformat.reads(text, as_version=4).cells}
    for gid, lines in H.secret_lines(source).items():
        for line in lines:
            assert line not in cells.get(gid, ""), f"{released.name}, cell {gid}: leaked solution/hidden line {line!r}"


def _affine_bug(answers: dict[str, str]) -> dict[str, str]:
    """The chapter-2 mistake: dL/dW stored transposed, grads["W"] = (X^T dY).T."""
    for gid, code in answers.items():
        if "class Affine" in code and _W_GRAD.search(code):
            return {gid: _W_GRAD.sub(r"\1(\3).T\4", code, count=1)}
    raise AssertionError("no solution cell with `class Affine` and `self.grads['W'] = ...` found in chapter 2")


def _test_cells(source: Path) -> dict[str, str]:
    nb = nbformat.read(str(source), as_version=4)
    return {H.grade_id(c): c.source for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_release_and_autograde(chapter, tmp_path):
    sources = _source_notebooks(chapter)
    release([chapter], release_dir=tmp_path / "release")
    subs = tmp_path / "submissions"
    wrong: dict[str, str] = {}
    for source in sources:
        released = tmp_path / "release" / chapter / source.name
        _check_release_is_clean(source, released)
        committed = REPO_ROOT / "course" / chapter / source.name
        if committed.exists():
            _check_release_is_clean(source, committed)
        answers = H.student_answers(source)
        H.write(H.fill(released, answers), subs / "solution", source.name)
        H.write(nbformat.read(str(released), as_version=4), subs / "released", source.name)
        if chapter == "02_backprop":
            bug = _affine_bug(answers) if any("class Affine" in a for a in answers.values()) else {}
            wrong.update(bug)
            H.write(H.fill(released, answers, bug), subs / "wrong_affine", source.name)

    workdir, csv_path = tmp_path / "work", tmp_path / "grades.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", chapter, str(subs), "--timeout", "300",
         "--notebook-timeout", "600", "--csv", str(csv_path), "--feedback", "--workdir", str(workdir)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=1500)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(proc.stdout)
    grades = H.read_grades(csv_path)
    multi = len(sources) > 1

    # the solution: full marks, no error anywhere, every exercise has points
    sol = grades["solution"]
    assert sol["TOTAL"][0] == sol["TOTAL"][1] > 0, proc.stdout
    assert all(mx > 0 for ex, (_, mx, _) in sol.items() if ex != "TOTAL")
    for source in sources:
        autograded = nbformat.read(str(workdir / "autograded" / "solution" / chapter / source.name), as_version=4)
        errors = [(i, o.get("ename")) for i, c in enumerate(autograded.cells) if c.cell_type == "code"
                  for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert errors == [], f"the solution of {source.name} raised in cells {errors}"

    # the release as is: runs to the end (every code cell executed, kernel alive) and scores 0
    rel = grades["released"]
    assert rel["TOTAL"][0] == 0, proc.stdout
    assert rel["TOTAL"][2] == "" or not re.search(r"KernelDied|did not stop|wall-clock|not run", rel["TOTAL"][2])
    for source in sources:
        autograded = nbformat.read(str(workdir / "autograded" / "released" / chapter / source.name), as_version=4)
        skipped = [i for i, c in enumerate(autograded.cells)
                   if c.cell_type == "code" and c.source.strip() and c.get("execution_count") is None]
        assert skipped == [], f"released {source.name}: cells {skipped} did not run"

    if chapter == "02_backprop":
        bad = grades["wrong_affine"]
        tests = {}
        for source in sources:
            for gid, src in _test_cells(source).items():
                tests[f"{source.stem}:{gid}" if multi else gid] = src
        affine_test = [g for g, s in tests.items() if re.search(r"check_layer\(\s*Affine\b", s)]
        net_test = [g for g, s in tests.items() if "TwoLayerNet" in s or "net.gradient" in s]
        train_test = [g for g, s in tests.items() if "check_accuracy" in s or "check_network_training" in s]
        assert affine_test and net_test and train_test, f"could not identify the Affine-dependent tests in {tests}"
        affected = set(affine_test + net_test + train_test)
        lost = {ex for ex, (score, mx, _) in bad.items() if ex != "TOTAL" and score < mx}
        assert lost == affected, f"expected to lose exactly {sorted(affected)}, lost {sorted(lost)}\n{proc.stdout}"
        assert all(bad[ex][0] == 0 for ex in affected)
        reason = bad[affine_test[0]][2]
        assert "dW" in reason and "transposed" in reason, reason
        html = "".join(p.read_text(encoding="utf-8")
                       for p in (workdir / "feedback" / "wrong_affine" / chapter).glob("*.html"))
        assert "transposed" in html and "dL/dW = Xᵀ dY" in html
