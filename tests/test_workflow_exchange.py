"""The whole term workflow on nbgrader's exchange, end to end, on the mini course (tests/fixtures/mini_course).

Instructor (python -m grader ...): term init → roster import → exchange-release → collect → grade-collected
→ (resubmission, due date, late submission) → collect --update → grade-collected → exchange-feedback → export.
Three students, simulated as one Unix user with their own home directories and ``--student``, each
through nbgrader's real command line (fetch_assignment, submit, fetch_feedback): ada submits on time;
ben submits a wrong ReLU, then a correct one (the latest counts); cyd submits after the due date
(late penalty 25 % per started day), resubmits late, then the term's rule becomes "zero". Everything lives
in tmp dirs (exchange, course root, term, homes).

Exercises of the mini course: double_test 1 point, relu_test 2 points, square_test 3 points (6 in all).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import grading_helpers as H  # tests/fixtures, on pytest's pythonpath
import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.utils import parse_utc

from grader.course import workflow as wf
from grader.course.exchange import StudentClient, inbound
from grader.course.release import REPO_ROOT, release
from grader.course.roster import import_roster
from grader.course.term import load_term, set_duedate

MINI = Path(__file__).parent / "fixtures" / "mini_course"
pytestmark = pytest.mark.slow

ANSWERS = H.student_answers(MINI / "solutions" / "mini" / "mini.ipynb")
WRONG_RELU = ANSWERS["relu_impl"].replace("return np.where(self.mask, dy, 0.0)", "return dy")


def grader_cli(*args: str, term: Path | None = None) -> str:
    cmd = [sys.executable, "-m", "grader", *args] + (["--term", str(term)] if term else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def work_on(student: StudentClient, overrides: dict[str, str] | None = None) -> None:
    """The student fills in the fetched notebook (all answers right unless overridden) and saves it."""
    path = student.assignment_dir("mini") / "mini.ipynb"
    H.write(H.fill(path, ANSWERS, overrides), path.parent, path.name)


def test_term_release_submit_collect_grade_feedback_export(tmp_path):
    start = time.monotonic()
    source, term_dir, exchange = tmp_path / "course_root", tmp_path / "term", tmp_path / "exchange"
    shutil.copytree(MINI, source)
    release(source_root=source)                                     # course/mini, as `python -m grader release`

    # --- instructor: term, roster --------------------------------------------------------
    out = grader_cli("term", "init", str(term_dir), "--exchange", str(exchange), "--course-root", str(source),
                     "--late-penalty", "25%")
    assert "Created term" in out and (term_dir / "gradebook.db").is_file()
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,first_name,last_name,email\nada,Ada,Lovelace,ada@example.org\n"
                      'ben,Ben,"Bitdiddle, Jr.",ben@example.org\ncyd,Cyd,Charisse,\n', encoding="utf-8")
    assert "3 added" in grader_cli("roster", "import", str(roster), term=term_dir)
    term = load_term(term_dir)
    assert import_roster(roster, term.db_url).summary() == "0 added, 0 updated, 3 unchanged"   # idempotent

    # --- release to the exchange; students fetch and submit ----------------------------------
    out = grader_cli("exchange-release", "mini", term=term_dir)
    assert (exchange / "dlcourse" / "outbound" / "mini" / "mini.ipynb").is_file(), out
    homes = tmp_path / "homes"
    ada, ben, cyd = (StudentClient(name, homes / name, exchange) for name in ("ada", "ben", "cyd"))
    for student in (ada, ben):
        assert (student.fetch("mini") / "mini.ipynb").is_file()
    work_on(ada)
    ada_stamp = ada.submit("mini")
    work_on(ben, {"relu_impl": WRONG_RELU})
    ben.submit("mini")

    # --- collect, grade what is there ---------------------------------------------------------
    assert wf.collect(term, "mini").new == ["ada", "ben"]
    assert (term_dir / "collected" / "ada" / "mini" / "timestamp.txt").read_text().strip() == ada_stamp
    first = wf.grade_collected(term, "mini", timeout=20, notebook_timeout=60, feedback=False, echo=lambda _: None)
    assert sorted(first.graded) == ["ada", "ben"]
    assert {s: r.raw_score for s, r in first.results.items()} == {"ada": 6, "ben": 4}

    # --- ben resubmits (on time); the due date passes; cyd submits late -----------------------
    work_on(ben)
    ben_stamp = ben.submit("mini")
    due = datetime.now(UTC)
    set_duedate(term, "mini", due)
    cyd.fetch("mini")
    work_on(cyd)
    cyd_stamp = cyd.submit("mini")
    cyd_late = (parse_utc(cyd_stamp) - parse_utc(due)).total_seconds()
    assert parse_utc(ben_stamp) < parse_utc(due) and cyd_late > 0                # ordered by the steps above
    assert len(inbound(exchange, "mini")) == 4                       # nbgrader keeps every version

    plain = wf.collect(term, "mini")                                 # without --update: ben's new version waits
    assert plain.new == ["cyd"] and plain.waiting == {"ben": 1} and plain.late == ["cyd"]
    out = grader_cli("collect", "mini", "--update", term=term_dir)
    assert "1 updated" in out and "waiting" not in out
    assert (term_dir / "collected" / "ben" / "mini" / "timestamp.txt").read_text().strip() == ben_stamp

    out = grader_cli("grade-collected", "mini", "--timeout", "20", "--notebook-timeout", "60", term=term_dir)
    assert "grading 2 submission(s): ben, cyd" in out and "(unchanged, not regraded: 1)" in out
    assert "yes, " in out and "after the due date" in out
    graded = nbformat.read(str(term_dir / "autograded" / "ben" / "mini" / "mini.ipynb"), as_version=4)
    assert "np.where(self.mask, dy, 0.0)" in [c for c in graded.cells if H.grade_id(c) == "relu_impl"][0].source
    with Gradebook(term.db_url, "dlcourse") as gb:                  # the gradebook has the latest version's time
        assert gb.find_submission("mini", "ben").timestamp == parse_utc(ben_stamp)
    again = wf.grade_collected(term, "mini", echo=lambda _: None)   # nothing new: no autograding at all
    assert again.graded == [] and sorted(again.skipped) == ["ada", "ben", "cyd"]

    # --- feedback: released to the exchange, fetched by each student ---------------------------
    out = grader_cli("exchange-feedback", "mini", term=term_dir)
    assert "feedback released for 3 student(s)" in out
    ada_fb = ada.fetch_feedback("mini")                              # nbgrader fetch_feedback
    assert [p.parent.name for p in ada_fb] == [ada_stamp]
    assert "Score: 6.0 / 6.0" in ada_fb[0].read_text(encoding="utf-8")
    ben_fb = ben.fetch_feedback("mini")                              # only for the submission that was graded
    assert [p.parent.name for p in ben_fb] == [ben_stamp]
    assert "Score: 6.0 / 6.0" in ben_fb[0].read_text(encoding="utf-8")
    cyd_html = cyd.fetch_feedback("mini")[0].read_text(encoding="utf-8")
    assert "Score: 4.5 / 6.0" in cyd_html and "Late submission penalty (Score: -1.5)" in cyd_html

    # --- export ----------------------------------------------------------------------------------
    export = tmp_path / "grades.csv"
    grader_cli("export", "--to", str(export), term=term_dir)
    with open(export, newline="", encoding="utf-8") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert sorted(rows) == ["ada", "ben", "cyd"]
    got = {s: (float(r["raw_score"]), float(r["late_submission_penalty"]), float(r["score"]), r["late"])
           for s, r in rows.items()}
    assert got == {"ada": (6, 0, 6, "no"), "ben": (6, 0, 6, "no"), "cyd": (6, 1.5, 4.5, "yes")}
    assert float(rows["cyd"]["seconds_late"]) == pytest.approx(cyd_late, rel=1e-5)  # printed with 6 digits
    assert rows["ben"]["last_name"] == "Bitdiddle, Jr." and rows["ada"]["email"] == "ada@example.org"
    assert all(float(r["max_score"]) == 6 for r in rows.values())

    # --- cyd resubmits late (a wrong ReLU), then the term's rule becomes "zero": nbgrader's penalty follows ---
    work_on(cyd, {"relu_impl": WRONG_RELU})
    cyd.submit("mini")
    assert wf.collect(term, "mini", update=True).updated == ["cyd"]
    late = wf.grade_collected(term, "mini", timeout=20, notebook_timeout=60, feedback=False, echo=lambda _: None)
    assert late.graded == ["cyd"] and (late.results["cyd"].raw_score, late.results["cyd"].penalty) == (4, 1)
    term.late_penalty = "zero"
    term.save()
    zero = wf.grade_collected(term, "mini", students=["cyd"], timeout=20, notebook_timeout=60, feedback=False,
                              echo=lambda _: None)
    assert (zero.results["cyd"].raw_score, zero.results["cyd"].penalty, zero.results["cyd"].score) == (4, 4, 0)

    status = wf.term_status(term).splitlines()[-1].split()
    assert status[0] == "mini" and status[-4:] == ["yes", "3", "3", "3"]   # released, inbound, collected, graded
    # nothing was written into the repository or the course's source
    assert not (REPO_ROOT / "gradebook.db").exists() and not (source / "gradebook.db").exists()
    print(f"term workflow with 3 students in {time.monotonic() - start:.1f} s")


def test_collect_copies_links_as_links_and_grading_refuses_them(tmp_path):
    """nbgrader's own collect follows links (shutil.copytree): a student's inbound folder linking to the
    solutions, or itself a link to another student's folder, would be collected as that content and graded
    as the student's own. Collected as links, the autograder refuses both with the reason; ada is graded."""
    source, term_dir, exchange = tmp_path / "course_root", tmp_path / "term", tmp_path / "exchange"
    shutil.copytree(MINI, source)
    release(source_root=source)
    grader_cli("term", "init", str(term_dir), "--exchange", str(exchange), "--course-root", str(source))
    term = load_term(term_dir)
    wf.release_to_exchange(term, "mini")
    inbound_dir = exchange / "dlcourse" / "inbound"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    ada = inbound_dir / f"ada+mini+{stamp}+a1"
    H.write(H.fill(source / "course" / "mini" / "mini.ipynb", ANSWERS), ada, "mini.ipynb")
    (ada / "timestamp.txt").write_text(stamp, encoding="utf-8")
    eve = inbound_dir / f"eve+mini+{stamp}+e1"
    eve.mkdir()
    (eve / "mini.ipynb").symlink_to(source / "solutions" / "mini" / "mini.ipynb")
    (eve / "timestamp.txt").write_text(stamp, encoding="utf-8")
    (inbound_dir / f"mal+mini+{stamp}+m1").symlink_to(ada, target_is_directory=True)

    assert wf.collect(term, "mini").new == ["ada", "eve", "mal"]
    collected = term_dir / "collected"
    assert not (collected / "ada" / "mini" / "mini.ipynb").is_symlink()
    assert (collected / "eve" / "mini" / "mini.ipynb").is_symlink()            # not the solution's bytes
    assert not (collected / "mal" / "mini").is_symlink() and (collected / "mal" / "mini" / "mini.ipynb").is_symlink()

    lines: list[str] = []
    run = wf.grade_collected(term, "mini", timeout=20, notebook_timeout=60, feedback=False, echo=lines.append)
    assert run.graded == ["ada"] and run.results["ada"].raw_score == 6
    text = "\n".join(lines)
    for student in ("eve", "mal"):
        assert f"refused {student}: mini.ipynb is a symbolic link" in text and "links are never followed" in text
    with Gradebook(term.db_url, "dlcourse") as gb:
        assert {s.student.id for s in gb.assignment_submissions("mini")} == {"ada"}
