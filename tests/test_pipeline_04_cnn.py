"""Chapter 4 (CNN) through the real pipeline: release, then ``python -m grader autograde --workers 1``.

One batch of six submissions:
- the solution (the release filled with the solution cells): full marks, no error in any cell;
- the release as is: runs to its last cell and scores 0;
- ``conv_dw_transposed``: Conv2D stores dW with its channel axes swapped, dW.transpose(1, 0, 2, 3);
- ``conv_unflipped``: convolve2d forgets to rotate the kernel (it returns the correlation);
- ``maxpool_every_cell``: MaxPool2D's backward routes dL/dy to every cell of the window;
- ``col2im_padded``: col2im returns the padded array (the padding is not cut off);
each wrong submission loses exactly the points of the exercise it breaks (the later exercises that use it
are graded with the grader's own layers, Conv2D with the grader's im2col/col2im), with the cause named in the
CSV reason.
"""

from __future__ import annotations

import subprocess
import sys
import time

import grading_helpers as H  # tests/fixtures, on pytest's pythonpath
import nbformat
import pytest

from grader.course.release import REPO_ROOT, release

CHAPTER = "04_cnn"
pytestmark = pytest.mark.slow

#: submission -> (grade_id of the solution cell, old text, new text), and the exercise it must lose with words
#: of its reason
MISTAKES = {
    "conv_dw_transposed": ("conv2d", 'self.grads["W"] = (dy_mat.T @ self.col).reshape(w.shape)',
                           'self.grads["W"] = (dy_mat.T @ self.col).reshape(w.shape).transpose(1, 0, 2, 3)',
                           "test_conv2d", ["channel axes swapped"]),
    "conv_unflipped": ("convolve2d", "return correlate2d(x, h[::-1, ::-1])", "return correlate2d(x, h)",
                       "test_convolve2d", ["kernel is not flipped"]),
    "maxpool_every_cell": ("maxpool2d", "share = np.where(self.x_pad[:, :, rows, cols] == self.y, left, 0.0)",
                           "share = dy", "test_maxpool2d", ["every cell of the window"]),
    "col2im_padded": ("col2im", "return dx[:, :, pad:pad + h, pad:pad + w]", "return dx", "test_col2im",
                      ["padding is not removed"]),
}


def _source() -> nbformat.NotebookNode:
    notebooks = sorted((REPO_ROOT / "solutions" / CHAPTER).glob("*.ipynb"))
    assert notebooks, f"solutions/{CHAPTER}/ has no notebook"
    return notebooks[0]


def test_chapter4_release_and_autograde(tmp_path):
    source = _source()
    release([CHAPTER], release_dir=tmp_path / "release")
    released = tmp_path / "release" / CHAPTER / source.name
    text = released.read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"'{marker}' left in the release"
    cells = {H.grade_id(c): c.source for c in nbformat.reads(text, as_version=4).cells}
    for gid, lines in H.secret_lines(source).items():
        for line in lines:
            assert line not in cells.get(gid, ""), f"cell {gid}: leaked solution/hidden line {line!r}"

    answers = H.student_answers(source)
    subs = tmp_path / "submissions"
    H.write(H.fill(released, answers), subs / "solution", source.name)
    H.write(nbformat.read(str(released), as_version=4), subs / "released", source.name)
    for student, (gid, old, new, _, _) in MISTAKES.items():
        assert old in answers[gid], f"the solution cell {gid} no longer contains {old!r}"
        H.write(H.fill(released, answers, {gid: answers[gid].replace(old, new)}), subs / student, source.name)

    workdir, csv_path = tmp_path / "work", tmp_path / "grades.csv"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", CHAPTER, str(subs), "--workers", "1", "--timeout", "300",
         "--notebook-timeout", "600", "--csv", str(csv_path), "--workdir", str(workdir)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=1800)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(proc.stdout)
    print(f"chapter 4: {len(MISTAKES) + 2} submissions graded in {elapsed:.0f} s with one worker")
    grades = H.read_grades(csv_path)

    sol = grades["solution"]
    assert sol["TOTAL"][0] == sol["TOTAL"][1] == 24, proc.stdout
    graded = [ex for ex in sol if ex != "TOTAL"]
    assert len(graded) == 12 and all(sol[ex][1] > 0 for ex in graded)
    autograded = nbformat.read(str(workdir / "autograded" / "solution" / CHAPTER / source.name), as_version=4)
    errors = [(i, o.get("ename")) for i, c in enumerate(autograded.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == [], f"the solution raised in cells {errors}"

    rel = grades["released"]
    assert rel["TOTAL"][0] == 0, proc.stdout
    autograded = nbformat.read(str(workdir / "autograded" / "released" / CHAPTER / source.name), as_version=4)
    skipped = [i for i, c in enumerate(autograded.cells)
               if c.cell_type == "code" and c.source.strip() and c.get("execution_count") is None]
    assert skipped == [], f"released notebook: cells {skipped} did not run"

    for student, (_, _, _, exercise, words) in MISTAKES.items():
        got = grades[student]
        lost = {ex for ex, (score, mx, _) in got.items() if ex != "TOTAL" and score < mx}
        assert lost == {exercise}, f"{student}: expected to lose exactly {exercise}, lost {sorted(lost)}\n{proc.stdout}"
        assert got[exercise][0] == 0
        assert got["TOTAL"][0] == 24 - sol[exercise][1]
        for word in words:
            assert word in got[exercise][2], f"{student}: {word!r} not in the reason {got[exercise][2]!r}"
