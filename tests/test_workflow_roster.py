"""Roster import (checked, all or nothing, idempotent), late-penalty rule, due dates, grades export. Fast."""

from __future__ import annotations

import csv
import json
import re
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from grader.course import term as course_term
from grader.course.release import REPO_ROOT, ensure_scripts_on_path
from grader.course.roster import RosterError, import_roster, list_students, read_roster, validate_student_id
from grader.plugins import GradesCsvExport, LatePenalty

GOOD = ("student_id,first_name,last_name,email\n"
        "ada,Ada,Lovelace,ada@example.org\n"
        'ben,Ben,"Bitdiddle, Jr.",ben@example.org\n'
        "yamada.taro,太郎,山田,\n")


def write(tmp_path: Path, text: str, name: str = "roster.csv", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


@pytest.fixture(scope="module")
def empty_gradebook(tmp_path_factory) -> Path:
    """An empty nbgrader gradebook, made once (creating one runs nbgrader's migrations, ~2 s)."""
    path = tmp_path_factory.mktemp("gradebook") / "gradebook.db"
    ensure_scripts_on_path()                                   # nbgrader runs `alembic` by name
    with Gradebook(f"sqlite:///{path}", "dlcourse"):
        pass
    return path


@pytest.fixture
def db(tmp_path, empty_gradebook) -> str:
    shutil.copy(empty_gradebook, tmp_path / "gradebook.db")
    return f"sqlite:///{tmp_path / 'gradebook.db'}"


def students(db: str) -> dict[str, tuple]:
    return {r.student_id: (r.first_name, r.last_name, r.email) for r in list_students(db)}


def test_import_is_idempotent_and_updates(tmp_path, db):
    path = write(tmp_path, GOOD, bom=True)                      # Excel's "CSV UTF-8" adds a byte-order mark
    report = import_roster(path, db)
    assert report.created == ["ada", "ben", "yamada.taro"] and not report.updated
    assert students(db) == {"ada": ("Ada", "Lovelace", "ada@example.org"),
                            "ben": ("Ben", "Bitdiddle, Jr.", "ben@example.org"),
                            "yamada.taro": ("太郎", "山田", None)}
    again = import_roster(path, db)
    assert again.summary() == "0 added, 0 updated, 3 unchanged"
    # a changed e-mail updates that student; columns in any order, `id` accepted; absent students are kept
    changed = write(tmp_path, "email,id,last_name,first_name\nada@uni.example,ada,Lovelace,Ada\n", "v2.csv")
    report = import_roster(changed, db)
    assert report.updated == ["ada"] and report.not_in_file == ["ben", "yamada.taro"]
    assert students(db)["ada"] == ("Ada", "Lovelace", "ada@uni.example") and len(students(db)) == 3


def test_bad_rows_are_all_reported_and_nothing_is_written(tmp_path, db):
    import_roster(write(tmp_path, GOOD), db)
    bad = write(tmp_path, "student_id,first_name,last_name,email\n"
                          "cyd,Cyd,Charisse,cyd@example.org\n"      # fine, but must not be imported
                          "dan+1,Dan,Doe,dan@example.org\n"
                          ",No,Id,\n"
                          "ada,Ada,Again,\n"
                          "ada,Ada,Twice,\n"
                          "eve,Eve,Smith,not-an-email\n"
                          "fay,Fay,Lee\n"
                          "gus smith,Gus,Smith,\n"
                          ".hidden,H,I,\n", "bad.csv")
    with pytest.raises(RosterError) as info:
        import_roster(bad, db)
    problems = info.value.problems
    assert problems == [
        "line 3: student_id 'dan+1' contains '+'; nbgrader's exchange cannot use it "
        "(the id must be the student's JupyterHub user name)",
        "line 4: student_id is empty",
        "line 6: student_id 'ada' already appears on line 5",
        "line 7: email 'not-an-email' of 'eve' is not an e-mail address",
        "line 8: 3 field(s), the header has 4 (a comma inside a name needs quotes)",
        "line 9: student_id 'gus smith' contains ' '; nbgrader's exchange cannot use it "
        "(the id must be the student's JupyterHub user name)",
        "line 10: student_id '.hidden' starts with '.' (it becomes a hidden directory name)",
    ]
    assert "nothing was imported" in str(info.value)
    assert "cyd" not in students(db) and students(db)["ada"][1] == "Lovelace"


@pytest.mark.parametrize("text, expected", [
    ("", "the file is empty"),
    ("first_name,last_name\nAda,Lovelace\n", "no student_id column"),
    ("student_id,first_name,phone\nada,Ada,123\n", "unknown column(s) 'phone'"),
    ("student_id,email,email\nada,a@b.c,a@b.c\n", "column(s) given twice: email"),
    ("student_id,first_name\n", "no students"),
])
def test_bad_files(tmp_path, text, expected):
    with pytest.raises(RosterError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        read_roster(write(tmp_path, text))


def test_not_utf8_and_missing_file(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("student_id,first_name\nzoe,Zoë\n".encode("latin-1"))
    with pytest.raises(RosterError, match="not UTF-8"):
        read_roster(path)
    with pytest.raises(RosterError, match="cannot read"):
        read_roster(tmp_path / "missing.csv")


def test_student_id_rules():
    assert validate_student_id("s1234567") is None and validate_student_id("taro.yamada@uni.ac.jp") is None
    for bad in ("a*b", "a/b", "a\\b", "tab\there", "x" * 129):
        assert validate_student_id(bad) is not None


def test_roster_cli_reports_errors_with_exit_1(tmp_path):
    term = tmp_path / "term"
    term.mkdir()
    settings = {"exchange": str(tmp_path / "ex"), "source_root": str(REPO_ROOT)}
    (term / course_term.TERM_FILE).write_text(json.dumps(settings))
    bad = write(tmp_path, "student_id\nok\nbad+id\n")
    proc = subprocess.run([sys.executable, "-m", "grader", "roster", "import", str(bad), "--term", str(term)],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 1 and "line 3: student_id 'bad+id' contains '+'" in proc.stderr
    assert not (term / "gradebook.db").exists() or list_students(f"sqlite:///{term / 'gradebook.db'}") == []
    proc = subprocess.run([sys.executable, "-m", "grader", "roster", "list", "--term", str(tmp_path / "nope")],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 1 and "is not a term directory" in proc.stderr


def test_late_penalty_rule():
    per_day = LatePenalty(percent_per_day=10.0)
    assert per_day.late_submission_penalty("s", 20.0, 0) is None
    assert per_day.late_submission_penalty("s", 20.0, 1) == pytest.approx(2.0)            # any lateness: a day
    assert per_day.late_submission_penalty("s", 20.0, 86400) == pytest.approx(2.0)
    assert per_day.late_submission_penalty("s", 20.0, 86401) == pytest.approx(4.0)
    assert per_day.late_submission_penalty("s", 20.0, 30 * 86400) == pytest.approx(20.0)  # never above the score
    assert LatePenalty(penalty_method="zero").late_submission_penalty("s", 7.0, 5) == 7.0  # nbgrader's methods
    assert LatePenalty().late_submission_penalty("s", 7.0, 5) is None
    assert course_term.parse_late_penalty("none") == ("none", 0.0)
    assert course_term.parse_late_penalty("zero") == ("zero", 0.0)
    assert course_term.parse_late_penalty("12.5%/day") == ("none", 12.5)
    for bad in ("10", "-5%", "150%", "half"):
        with pytest.raises(course_term.TermError):
            course_term.parse_late_penalty(bad)


def test_due_dates_are_stored_in_utc():
    assert course_term.parse_duedate("2025-06-01 23:59", "Asia/Tokyo") == datetime(2025, 6, 1, 14, 59)
    assert course_term.parse_duedate("2025-06-01 23:59:00 Asia/Tokyo") == datetime(2025, 6, 1, 14, 59)
    assert course_term.parse_duedate("2025-06-01T23:59:00+09:00", "UTC") == datetime(2025, 6, 1, 14, 59)
    assert course_term.parse_duedate("2025-06-01 23:59") == datetime(2025, 6, 1, 23, 59)
    with pytest.raises(course_term.TermError, match="cannot read the due date"):
        course_term.parse_duedate("next friday-ish")


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader creating a submission
def test_grades_export_quotes_names_and_flags_late(tmp_path, db):
    import_roster(write(tmp_path, GOOD), db)
    with Gradebook(db, "dlcourse") as gb:
        gb.update_or_create_assignment("ch", duedate=datetime(2025, 6, 1, 12, 0))
        sub = gb.update_or_create_submission("ch", "ben", timestamp=datetime(2025, 6, 1, 13, 0))
        assert sub.total_seconds_late == 3600
    out = tmp_path / "grades.csv"
    plugin = GradesCsvExport(to=str(out))
    with Gradebook(db, "dlcourse") as gb:
        plugin.export(gb)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert rows["ben"]["last_name"] == "Bitdiddle, Jr." and rows["ben"]["late"] == "yes"
    assert rows["ben"]["seconds_late"] == "3600" and rows["ada"]["late"] == "no" and rows["ada"]["timestamp"] == ""
    assert rows["yamada.taro"]["first_name"] == "太郎"


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader creating a submission
def test_grades_export_defuses_spreadsheet_formulas_but_not_numbers(tmp_path, db):
    roster = ("student_id,first_name,last_name,email\n"
              '@SUM(1),"=HYPERLINK(""http://evil.example"",""click"")",-2+3,\n'
              "ben,Ben,+1,ben@example.org\n")
    import_roster(write(tmp_path, roster), db)
    with Gradebook(db, "dlcourse") as gb:
        gb.update_or_create_assignment("ch", duedate=datetime(2025, 6, 1, 12, 0))
        gb.update_or_create_notebook("nb", "ch")
        gb.update_or_create_grade_cell("g", "nb", "ch", max_score=2.0, cell_type="code")
        gb.update_or_create_submission("ch", "ben", timestamp=datetime(2025, 6, 1, 11, 0))
        gb.find_grade("g", "nb", "ch", "ben").manual_score = -1.5     # a number, whatever its sign
        gb.db.commit()
    out = tmp_path / "grades.csv"
    with Gradebook(db, "dlcourse") as gb:
        GradesCsvExport(to=str(out)).export(gb)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"'@SUM(1)", "ben"}                            # OWASP: a leading apostrophe
    assert rows["'@SUM(1)"]["first_name"] == "'=HYPERLINK(\"http://evil.example\",\"click\")"
    assert rows["'@SUM(1)"]["last_name"] == "'-2+3" and rows["ben"]["last_name"] == "'+1"
    assert rows["ben"]["raw_score"] == "-1.5" and rows["ben"]["max_score"] == "2"


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader creating a submission
def test_a_notebook_left_out_of_a_resubmission_loses_the_earlier_penalty(tmp_path, db):
    """nbgrader's AssignLatePenalties runs only on a submitted notebook; one left out of a late resubmission is
    zeroed when the result is recorded, and the penalty the earlier submission left on it goes with it, so it
    cannot lower the rest's score; recorded_scores reads the gradebook as it is."""
    from grader.course.workflow import recorded_scores
    from grader.trusted.autograde import _record

    with Gradebook(db, "dlcourse") as gb:
        gb.update_or_create_assignment("ch", duedate=datetime(2025, 6, 1, 12, 0))
        for nb in ("one", "two"):
            gb.update_or_create_notebook(nb, "ch")
            gb.update_or_create_grade_cell("g", nb, "ch", max_score=2.0, cell_type="code")
        gb.update_or_create_student("ben")
        gb.update_or_create_submission("ch", "ben", timestamp=datetime(2025, 6, 1, 13, 0))
        gb.find_grade("g", "one", "ch", "ben").auto_score = 2.0
        gb.find_submission_notebook("one", "ch", "ben").late_submission_penalty = 0.5   # this submission's
        gb.find_grade("g", "two", "ch", "ben").auto_score = 1.0                           # the earlier one's
        gb.find_submission_notebook("two", "ch", "ben").late_submission_penalty = 0.5
        gb.db.commit()
    (tmp_path / "results").mkdir()
    _record(tmp_path, "ch", {"student": "ben", "notebooks": {"two": {"submitted": False}}}, config=None)
    with Gradebook(db, "dlcourse") as gb:
        two = gb.find_submission_notebook("two", "ch", "ben")
        assert (two.score, two.late_submission_penalty) == (0, None)
    assert json.loads((tmp_path / "results" / "ben.json").read_text())["recorded"] is True
    result = recorded_scores(course_term.Term(tmp_path, tmp_path / "exchange"), "ch", ["ben", "absent"])
    assert list(result) == ["ben"]
    ben = result["ben"]
    assert (ben.seconds_late, ben.raw_score, ben.penalty, ben.score, ben.max_score) == (3600, 2, 0.5, 1.5, 4)


def test_one_workflow_command_at_a_time(tmp_path):
    term = course_term.Term(tmp_path, tmp_path / "exchange")
    with course_term.locked(term):
        with pytest.raises(course_term.TermError, match="another workflow command is running"):
            with course_term.locked(term):
                pass
    with course_term.locked(term):                                        # released again
        pass


GUIDE = REPO_ROOT / "docs" / "instructor-workflow.md"


def _guide_commands() -> list[str]:
    """The instructor's `python -m grader` command lines in the guide's code blocks (continuations joined)."""
    text, commands, in_block = GUIDE.read_text(encoding="utf-8"), [], False
    for line in re.sub(r"\\\n\s*", " ", GUIDE.read_text(encoding="utf-8")).splitlines():
        if line.lstrip().startswith("```"):
            in_block = not in_block
        elif in_block and "-m grader " in line:
            commands.append(line.strip())
    assert text and commands
    return commands


def test_instructor_guide_commands_need_no_activated_environment_and_exist():
    from grader.__main__ import main

    for line in _guide_commands():
        assert ".venv/bin/python -m grader " in line, line            # runs without an activated .venv
        words = shlex.split(line.split(".venv/bin/python -m grader ", 1)[1].split("#")[0])
        command = words[:2] if words[0] in ("term", "roster") else words[:1]
        with pytest.raises(SystemExit) as info:                        # the (sub)command exists
            main([*command, "--help"])
        assert info.value.code == 0, line


def test_instructor_guide_due_date_is_in_the_future():
    lines = [c for c in _guide_commands() if " term duedate " in c]
    assert lines
    for line in lines:
        words = subprocess.run(["bash", "-c", "printf '%s\\n' " + line.split(" term duedate ", 1)[1].split("#")[0]],
                               capture_output=True, text=True, check=True).stdout.splitlines()
        assert course_term.parse_duedate(words[1], "Asia/Tokyo") > datetime.now(UTC).replace(tzinfo=None), line
