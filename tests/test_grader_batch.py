"""No lost grades: the batch grader killed mid-batch, rerun, resubmission, --regrade (mini course).

The gradebook has one writer (the batch process); a worker's result reaches it only complete. Killing the
grader keeps every recorded result; a rerun records results that finished after the kill without grading
them again, leaves everything already recorded untouched, and grades the rest. A submission refused later
(a link, a hard link) leaves the gradebook. Staging refuses hard links as it refuses symbolic links.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grading_helpers as H  # tests/fixtures, on pytest's pythonpath
import pytest
import waiting as W
from nbgrader.api import Gradebook, MissingEntry

from grader.course.release import REPO_ROOT
from grader.trusted import autograde as ag
from grader.trusted import staging

MINI, SOURCE_NB = H.MINI, H.MINI_SOURCE
EXERCISES = ("double_test", "relu_test", "square_test")
LINKS = "links are never followed, submit the files themselves"
HARD = ("mini.ipynb has 2 hard links (it is also another file, perhaps another student's); hard links are not "
        "accepted, submit the files themselves")
pytestmark = pytest.mark.slow


def _grade_rows(ws: Path) -> dict[str, list[tuple]]:
    """student -> [(grade id, cell, auto_score, submission id)] by grade id, from the gradebook."""
    with Gradebook(f"sqlite:///{ws / 'gradebook.db'}", "dlcourse") as gb:
        return {sub.student_id: sorted((grade.id, grade.cell_id, grade.auto_score, sub.id)
                                       for nb in sub.notebooks for grade in nb.grades)
                for sub in gb.assignment_submissions("mini")}


def test_killed_grader_loses_nothing_and_a_rerun_is_idempotent(tmp_path):
    release = H.release_copy(MINI, tmp_path / "course_root") / "course" / "mini" / "mini.ipynb"
    answers = H.student_answers(SOURCE_NB)
    # c_slow's square cell sleeps 12 s: the grader is killed as soon as the journal shows that cell started (an
    # event), so c_slow cannot have finished yet unless this process stalls for 12 s between two statements.
    slow = answers["square_impl"] + "\nimport time\ntime.sleep(12)\n"
    wrong = {"relu_impl": answers["relu_impl"].replace("return np.where(self.mask, dy, 0.0)", "return dy")}
    subs, ws = tmp_path / "submissions", tmp_path / "work"
    for name, over in {"a_correct": {}, "b_wrong": wrong, "c_slow": {"square_impl": slow}, "d_correct": {}}.items():
        H.write(H.fill(release, answers, over), subs / name, "mini.ipynb")
    square = H.cell_index(SOURCE_NB, "square_impl")

    proc = subprocess.Popen([sys.executable, "-m", "grader", "autograde", "mini", str(subs), "--course-root",
                             str(MINI), "--workers", "1", "--timeout", "60", "--workdir", str(ws)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO_ROOT)
    running_c = ws / "journal" / "c_slow" / "mini" / "mini.jsonl"
    W.wait_for(lambda: any(e.get("event") == "run" and e.get("index") == square for e in W.journal_events(running_c)),
               what="c_slow's slow cell to start", alive=proc)
    proc.kill()  # SIGKILL: no cleanup, no chance to finish anything
    proc.wait()
    recorded = _grade_rows(ws)
    assert sorted(recorded) == ["a_correct", "b_wrong"], "exactly the two finished submissions are recorded"
    # the worker that was grading c_slow finishes its submission and writes its result, then exits
    result_c = ws / "results" / "c_slow.json"
    W.wait_for(result_c.exists, what="c_slow's result")
    assert json.loads(result_c.read_text())["status"] == "ok"

    lines: list[str] = []
    batch = ag.autograde("mini", subs, source_root=MINI, timeout=60, workdir=ws, workers=2, echo=lines.append,
                         progress=False)
    status = {s.student: s.status for s in batch.students}
    assert status == {"a_correct": ag.Outcome.SKIPPED, "b_wrong": ag.Outcome.SKIPPED, "c_slow": ag.Outcome.RECOVERED,
                      "d_correct": ag.Outcome.GRADED}
    after = _grade_rows(ws)
    assert {s: after[s] for s in ("a_correct", "b_wrong")} == recorded  # untouched
    totals = {s.student: s.score for s in batch.students}
    assert totals == {"a_correct": 6, "b_wrong": 4, "c_slow": 6, "d_correct": 6}
    assert "(1 to grade, 3 already graded)" in lines[0]

    # a resubmission is a new submission: only it is graded again
    H.write(H.fill(release, answers, wrong), subs / "d_correct", "mini.ipynb")
    batch = ag.autograde("mini", subs, source_root=MINI, timeout=60, workdir=ws, workers=2, echo=lines.append,
                         progress=False)
    assert {s.student: s.status for s in batch.students}["d_correct"] is ag.Outcome.GRADED
    assert sum(s.status is ag.Outcome.SKIPPED for s in batch.students) == 3
    assert batch.by_student()["d_correct"].score == 4
    assert _grade_rows(ws)["a_correct"] == recorded["a_correct"]

    # --regrade grades everything again, with the same results; --show-hidden puts the hidden tests into
    # the feedback (by default they are removed)
    batch = ag.autograde("mini", subs, source_root=MINI, timeout=60, workdir=ws, workers=2, echo=lines.append,
                         progress=False, regrade=True, feedback=True, show_hidden=True)
    assert all(s.status is ag.Outcome.GRADED for s in batch.students)
    assert {s.student: s.score for s in batch.students} == {"a_correct": 6, "b_wrong": 4, "c_slow": 6,
                                                            "d_correct": 4}
    html = (ws / "feedback" / "b_wrong" / "mini" / "mini.html").read_text(encoding="utf-8")
    assert "HIDDEN-MARKER-2" in html and "returns dy unchanged" in html

    # graded before, refused now (its folder became a link to another student's): the earlier submission
    # leaves the gradebook, so nbgrader's exports show no stale score; the CSV and the table give the refusal.
    # A notebook that is a hard link (to a file outside the submissions) is refused too.
    shutil.rmtree(subs / "d_correct")
    (subs / "d_correct").symlink_to("a_correct")
    shutil.copy(subs / "a_correct" / "mini.ipynb", tmp_path / "elsewhere.ipynb")
    (subs / "e_hard").mkdir()
    os.link(tmp_path / "elsewhere.ipynb", subs / "e_hard" / "mini.ipynb")
    lines.clear()
    batch = ag.autograde("mini", subs, source_root=MINI, timeout=60, workdir=ws, workers=2, echo=lines.append,
                         progress=False, csv_path=tmp_path / "grades.csv")
    assert {s.student: s.status for s in batch.students} == {
        "a_correct": ag.Outcome.SKIPPED, "b_wrong": ag.Outcome.SKIPPED, "c_slow": ag.Outcome.SKIPPED,
        "d_correct": ag.Outcome.REFUSED, "e_hard": ag.Outcome.REFUSED}
    assert sorted(_grade_rows(ws)) == ["a_correct", "b_wrong", "c_slow"]
    with Gradebook(f"sqlite:///{ws / 'gradebook.db'}", "dlcourse") as gb, pytest.raises(MissingEntry):
        gb.find_submission("mini", "d_correct")
    grades = H.read_grades(tmp_path / "grades.csv")
    for student, why in (("d_correct", f"the student folder is a symbolic link (to a_correct); {LINKS}"),
                         ("e_hard", HARD)):
        assert {e: grades[student][e] for e in EXERCISES} == {
            "double_test": (0, 1, f"not graded: {why}"), "relu_test": (0, 2, f"not graded: {why}"),
            "square_test": (0, 3, f"not graded: {why}")}
        assert grades[student]["TOTAL"] == (0, 6, f"refused: {why}")
        assert f"  {student}: refused: {why}" in "\n".join(lines).splitlines()   # the table's notes
    for folder in ("submitted", "autograded", "feedback"):
        assert not (ws / folder / "d_correct" / "mini").exists()
    assert grades["a_correct"]["TOTAL"] == (6, 6, "")


def test_hard_links_are_refused_like_symbolic_links(tmp_path):
    """A notebook with a second hard link (another student's file, or any other) refuses its submission; a hard
    linked file the grader does not use is not copied; a hard link made after the check is refused when staged."""
    subs = tmp_path / "subs"
    for student in ("alice", "bob", "carol", "dave"):
        (subs / student).mkdir(parents=True)
        if student != "bob":
            (subs / student / "mini.ipynb").write_text(f'{{"student": "{student}"}}')
    os.link(subs / "alice" / "mini.ipynb", subs / "bob" / "mini.ipynb")     # bob's notebook IS alice's
    (subs / "carol" / "data.csv").write_text("1,2\n")
    os.link(subs / "carol" / "data.csv", tmp_path / "data.csv")
    found = {sub.student: sub for sub in staging.find_submissions(subs, "mini")}
    assert found["alice"].refused == found["bob"].refused == HARD
    assert (found["carol"].refused, found["carol"].files) == ("", ("mini.ipynb",))
    assert staging.stage(found["carol"], tmp_path / "staged") == found["carol"].digest
    assert sorted(p.name for p in (tmp_path / "staged").iterdir()) == ["mini.ipynb"]
    os.link(subs / "dave" / "mini.ipynb", tmp_path / "dave.ipynb")          # after the check, before staging
    with pytest.raises(OSError, match="mini.ipynb has 2 hard links"):
        staging.stage(found["dave"], tmp_path / "staged-dave")


def test_a_second_grader_on_the_same_workdir_is_refused(tmp_path):
    ws = tmp_path / "work"
    ws.mkdir()
    (ws / ".dlcourse-grading").write_text("")
    subs = tmp_path / "subs"
    (subs / "x").mkdir(parents=True)
    import fcntl
    with open(ws / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(ValueError, match="another `python -m grader autograde` is running"):
            ag.autograde("mini", subs, source_root=MINI, workdir=ws, echo=lambda s: None, progress=False)


def test_a_regrade_interrupted_before_the_gradebook_is_finished_by_a_rerun(tmp_path, monkeypatch):
    """The instructor fixes a test and grades again; the batch is interrupted after the worker finished but
    before its result reached the gradebook. A rerun records that result (the earlier grading of the same
    submission does not count as recorded) instead of leaving the gradebook with the old score."""
    course = H.release_copy(MINI, tmp_path / "course_root")
    source = course / "solutions" / "mini" / "mini.ipynb"
    fixed = source.read_text(encoding="utf-8")
    source.write_text(fixed.replace("expected=[[0.0, 2.0, 4.0], 3.0]", "expected=[[0.0, 2.0, 4.0], 3.5]"),
                      encoding="utf-8")  # a mistake in the instructor's test: everyone loses double_test
    subs, ws = tmp_path / "submissions", tmp_path / "work"
    H.write(H.fill(course / "course" / "mini" / "mini.ipynb", H.student_answers(SOURCE_NB)), subs / "alice",
            "mini.ipynb")
    run = dict(source_root=course, timeout=60, workdir=ws, workers=1, echo=lambda line: None, progress=False)
    assert ag.autograde("mini", subs, **run).by_student()["alice"].score == 5

    source.write_text(fixed, encoding="utf-8")  # fixed, then graded again; interrupted before the gradebook

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ag, "_record", interrupted)
        with pytest.raises(KeyboardInterrupt):
            ag.autograde("mini", subs, regrade=True, **run)
    assert json.loads((ws / "results" / "alice.json").read_text())["status"] == "ok"
    batch = ag.autograde("mini", subs, **run)
    assert batch.by_student()["alice"].status is ag.Outcome.RECOVERED
    assert batch.by_student()["alice"].score == 6
    assert sorted(score for *_, score, _ in _grade_rows(ws)["alice"]) == [1, 2, 3]
