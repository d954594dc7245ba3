"""Chapter 5 (RBM and DBN) through the real pipeline: release, then one `python -m grader autograde --workers 1` batch.

Submissions, all made from the release:
- the solution: full marks, no error output in any cell;
- the release as is: runs to its last cell and scores 0;
- four wrong submissions, each losing EXACTLY the points of the exercise with the mistake, with the cause named in
  the CSV reason: swapped CD phases, a CD that forgets the hidden bias, a free energy with log(1 + exp(x))
  (overflows on the hidden test), a DBN loop that passes binary samples up instead of probabilities. The exercises
  that build on a wrong one keep their points: the closing experiment pretrains through a train_layer that hands out
  dlcore's reference RBMs, the DBN loop is graded with a stand-in train_rbm, CD with injected uniforms.
"""

from __future__ import annotations

import re
import subprocess
import sys

import grading_helpers as H  # tests/fixtures, on pytest's pythonpath
import nbformat
import pytest

from grader.course.release import REPO_ROOT, release

CHAPTER = "05_rbm_dbn"
pytestmark = pytest.mark.slow


def _replace(answers: dict[str, str], gid: str, old: str, new: str) -> dict[str, str]:
    assert old in answers[gid], f"{gid}: {old!r} not found in the solution"
    return {gid: answers[gid].replace(old, new, 1)}


def _mistakes(answers: dict[str, str]) -> dict[str, tuple[dict[str, str], str, list[str]]]:
    """name -> (answer overrides, the test cell that must lose its points, fragments of the CSV reason)."""
    return {
        "swapped_phases": (
            _replace(answers, "cd_gradient", 'return {"W": (vk.T @ phk - v0.T @ ph0) / n,\n'
                     '            "b": vk.mean(axis=0) - v0.mean(axis=0),\n'
                     '            "c": phk.mean(axis=0) - ph0.mean(axis=0)}',
                     'return {"W": (v0.T @ ph0 - vk.T @ phk) / n,\n'
                     '            "b": v0.mean(axis=0) - vk.mean(axis=0),\n'
                     '            "c": ph0.mean(axis=0) - phk.mean(axis=0)}'),
            "test_cd_gradient", ["phases are swapped"]),
        "no_hidden_bias": (
            {"cd_gradient": answers["cd_gradient"].replace("p_h_given_v(v0, W, c)", "p_h_given_v(v0, W, 0.0 * c)")
             .replace("p_h_given_v(vk, W, c)", "p_h_given_v(vk, W, 0.0 * c)")},
            "test_cd_gradient", ["hidden bias c is missing"]),
        "naive_free_energy": (
            _replace(answers, "free_energy", "np.sum(softplus(c + v @ W), axis=1)",
                     "np.sum(np.log(1.0 + np.exp(c + v @ W)), axis=1)"),
            "test_free_energy", ["overflow", "softplus"]),
        "dbn_samples": (
            _replace(answers, "pretrain_dbn", "x = p_h_given_v(x, W, c)",
                     "x = (np.random.default_rng(0).random((len(x), n_hidden)) < p_h_given_v(x, W, c)).astype(float)"),
            "test_pretrain_dbn", ["RBM 2", "binary samples were passed"]),
    }


def test_chapter_5_release_and_autograde(tmp_path):
    sources = sorted((REPO_ROOT / "solutions" / CHAPTER).glob("*.ipynb"))
    assert sources, f"solutions/{CHAPTER} has no notebook"
    assert len(sources) == 1
    source = sources[0]
    release([CHAPTER], release_dir=tmp_path / "release")
    released = tmp_path / "release" / CHAPTER / source.name
    for nb_path in (released, REPO_ROOT / "course" / CHAPTER / source.name):
        text = nb_path.read_text(encoding="utf-8")
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{nb_path}: '{marker}' left in the release"
        cells = {H.grade_id(c): c.source for c in nbformat.reads(text, as_version=4).cells}
        for gid, lines in H.secret_lines(source).items():
            for line in lines:
                assert line not in cells.get(gid, ""), f"{nb_path.name}, cell {gid}: leaked line {line!r}"

    answers = H.student_answers(source)
    mistakes = _mistakes(answers)
    subs = tmp_path / "submissions"
    H.write(H.fill(released, answers), subs / "solution", source.name)
    H.write(nbformat.read(str(released), as_version=4), subs / "released", source.name)
    for name, (overrides, _, _) in mistakes.items():
        H.write(H.fill(released, answers, overrides), subs / name, source.name)

    workdir, csv_path = tmp_path / "work", tmp_path / "grades.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", CHAPTER, str(subs), "--workers", "1", "--timeout", "300",
         "--notebook-timeout", "600", "--csv", str(csv_path), "--workdir", str(workdir)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(proc.stdout)
    grades = H.read_grades(csv_path)

    sol = grades["solution"]
    assert sol["TOTAL"][0] == sol["TOTAL"][1] > 0, proc.stdout
    graded = [ex for ex in sol if ex != "TOTAL"]
    assert len(graded) >= 9 and all(sol[ex][1] > 0 for ex in graded)
    autograded = nbformat.read(str(workdir / "autograded" / "solution" / CHAPTER / source.name), as_version=4)
    errors = [(i, o.get("ename")) for i, c in enumerate(autograded.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == [], f"the solution raised in cells {errors}"

    rel = grades["released"]
    assert rel["TOTAL"][0] == 0, proc.stdout
    assert not re.search(r"KernelDied|did not stop|wall-clock|not run", rel["TOTAL"][2])
    autograded = nbformat.read(str(workdir / "autograded" / "released" / CHAPTER / source.name), as_version=4)
    skipped = [i for i, c in enumerate(autograded.cells)
               if c.cell_type == "code" and c.source.strip() and c.get("execution_count") is None]
    assert skipped == [], f"released notebook: cells {skipped} did not run"

    for name, (_, test_cell, fragments) in mistakes.items():
        got = grades[name]
        lost = {ex for ex, (score, mx, _) in got.items() if ex != "TOTAL" and score < mx}
        assert lost == {test_cell}, f"{name}: expected to lose exactly {test_cell}, lost {sorted(lost)}\n{proc.stdout}"
        assert got[test_cell][0] == 0
        assert got["TOTAL"][0] == sol["TOTAL"][0] - sol[test_cell][1]
        for fragment in fragments:
            assert fragment in got[test_cell][2], f"{name}: {fragment!r} not in the reason {got[test_cell][2]!r}"
