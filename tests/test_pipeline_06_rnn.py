"""Chapter 6 (RNN, LSTM, attention, Transformer) through the real pipeline: release, then autograde with one worker.

- the release contains no solution code and no hidden tests;
- the solution scores full marks with no error in any cell;
- the released notebooks run to their last cell and score 0;
- three prepared wrong submissions each lose exactly the exercises their mistake touches, with the cause in the CSV:
  RNN weight gradients overwritten instead of summed over time; LSTM gates read in PyTorch's order; scaled
  dot-product attention without 1/√d_k together with clipping per tensor instead of by the global norm.
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

CHAPTER = "06_rnn"
pytestmark = pytest.mark.slow

# (notebook stem, answer cell id, text in the solution, replacement)
MISTAKES = {
    "wrong_bptt": [("rnn_lstm", "rnn", "            dwx += xs[:, t].T @ da\n", "            dwx = xs[:, t].T @ da\n")],
    "wrong_lstm_gates": [("rnn_lstm", "lstm_cell",
                          "f, g, i, o = sigmoid(a[:, :H]), np.tanh(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H]), "
                          "sigmoid(a[:, 3 * H:])",
                          "i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), "
                          "sigmoid(a[:, 3 * H:])")],
    "wrong_scale_and_clip": [
        ("attention_transformer", "sdpa", "s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])",
         "s = q @ np.swapaxes(k, -1, -2)"),
        ("rnn_lstm", "clip_grads",
         "    scale = max_norm / max(norm, max_norm)\n    for key in grads:\n        grads[key] = grads[key] * scale",
         "    for key in grads:\n        grads[key] = grads[key] * (max_norm / max(float(np.linalg.norm(grads[key])), "
         "max_norm))"),
    ],
}
# student -> {exercise: a phrase the CSV reason must contain}
EXPECTED = {
    "wrong_bptt": {"rnn_lstm:test_rnn": "accumulated"},
    "wrong_lstm_gates": {"rnn_lstm:test_lstm_cell": "PyTorch's order"},
    "wrong_scale_and_clip": {"attention_transformer:test_sdpa": "1/√d_k",
                             "rnn_lstm:test_clip_grads": "clipped by its own norm"},
}


def _sources():
    notebooks = sorted((REPO_ROOT / "solutions" / CHAPTER).glob("*.ipynb"))
    assert {p.stem for p in notebooks} == {"rnn_lstm", "attention_transformer"}, notebooks
    return notebooks


def _check_release_is_clean(source, released):
    text = released.read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"{released.name}: '{marker}' left in the release"
    cells = {H.grade_id(c): c.source for c in nbformat.reads(text, as_version=4).cells}
    for gid, lines in H.secret_lines(source).items():
        for line in lines:
            assert line not in cells.get(gid, ""), f"{released.name}, cell {gid}: leaked line {line!r}"


def test_chapter_6_release_and_autograde(tmp_path):
    sources = _sources()
    release([CHAPTER], release_dir=tmp_path / "release")
    subs = tmp_path / "submissions"
    for source in sources:
        released = tmp_path / "release" / CHAPTER / source.name
        _check_release_is_clean(source, released)
        _check_release_is_clean(source, REPO_ROOT / "course" / CHAPTER / source.name)
        answers = H.student_answers(source)
        H.write(H.fill(released, answers), subs / "solution", source.name)
        H.write(nbformat.read(str(released), as_version=4), subs / "released", source.name)
        for student, edits in MISTAKES.items():
            override = {}
            for stem, gid, old, new in edits:
                if stem == source.stem:
                    assert old in answers[gid], f"{gid}: the solution no longer contains {old!r}"
                    override[gid] = answers[gid].replace(old, new, 1)
            H.write(H.fill(released, answers, override), subs / student, source.name)

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
    for source in sources:
        autograded = nbformat.read(str(workdir / "autograded" / "solution" / CHAPTER / source.name), as_version=4)
        errors = [(i, o.get("ename")) for i, c in enumerate(autograded.cells) if c.cell_type == "code"
                  for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert errors == [], f"the solution of {source.name} raised in cells {errors}"

    rel = grades["released"]
    assert rel["TOTAL"][0] == 0, proc.stdout
    assert not re.search(r"KernelDied|did not stop|wall-clock|not run", rel["TOTAL"][2])
    for source in sources:
        autograded = nbformat.read(str(workdir / "autograded" / "released" / CHAPTER / source.name), as_version=4)
        skipped = [i for i, c in enumerate(autograded.cells)
                   if c.cell_type == "code" and c.source.strip() and c.get("execution_count") is None]
        assert skipped == [], f"released {source.name}: cells {skipped} did not run"

    for student, causes in EXPECTED.items():
        got = grades[student]
        lost = {ex for ex, (score, mx, _) in got.items() if ex != "TOTAL" and score < mx}
        assert lost == set(causes), f"{student}: expected to lose exactly {sorted(causes)}, lost {sorted(lost)}"
        for ex, phrase in causes.items():
            score, mx, reason = got[ex]
            assert score == 0 and phrase in reason, f"{student} / {ex}: {reason}"
