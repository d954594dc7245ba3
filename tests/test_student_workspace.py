"""grader.student: the work folder (copied, never overwritten, old copies kept aside) and the lab configuration."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest

from grader.student import lab, workspace

ROOT = Path(__file__).resolve().parent.parent


def _course(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    for rel, text in {"01_a/a.ipynb": "A1", "02_b/b.ipynb": "B1", "02_b/data/table.csv": "x,y\n",
                      "02_b/.ipynb_checkpoints/b-checkpoint.ipynb": "old", "02_b/__pycache__/m.pyc": "c"}.items():
        (course / rel).parent.mkdir(parents=True, exist_ok=True)
        (course / rel).write_text(text)
    return course


def test_first_sync_copies_the_course_without_checkpoints_or_caches(tmp_path):
    course, work = _course(tmp_path), tmp_path / "work"
    report = workspace.sync(course, work)
    assert report.copied == ["01_a/a.ipynb", "02_b/b.ipynb", "02_b/data/table.csv"]
    assert report.updated_in_course == []
    assert (work / "02_b" / "data" / "table.csv").read_text() == "x,y\n"
    assert not (work / "02_b" / ".ipynb_checkpoints").exists() and not (work / "02_b" / "__pycache__").exists()
    assert workspace.chapters(course) == ["01_a", "02_b"]


def test_sync_never_overwrites_adds_new_chapters_and_reports_course_updates(tmp_path):
    course, work = _course(tmp_path), tmp_path / "work"
    workspace.sync(course, work)
    (work / "01_a" / "a.ipynb").write_text("the student's answers")
    (course / "01_a" / "a.ipynb").write_text("A2: the instructor's fix")
    (course / "03_c").mkdir()
    (course / "03_c" / "c.ipynb").write_text("C1")
    (course / "02_b" / "b2.ipynb").write_text("B2")
    report = workspace.sync(course, work)
    assert report.copied == ["02_b/b2.ipynb", "03_c/c.ipynb"]
    assert report.updated_in_course == ["01_a/a.ipynb"]
    assert (work / "01_a" / "a.ipynb").read_text() == "the student's answers"
    assert workspace.sync(course, work).copied == []  # a second start copies nothing


def test_a_deleted_notebook_comes_back_at_the_next_sync(tmp_path):
    course, work = _course(tmp_path), tmp_path / "work"
    workspace.sync(course, work)
    (work / "02_b" / "b.ipynb").unlink()
    assert workspace.sync(course, work).copied == ["02_b/b.ipynb"]
    assert (work / "02_b" / "b.ipynb").read_text() == "B1"


def test_fresh_renames_the_old_copy_and_copies_the_current_course(tmp_path):
    course, work = _course(tmp_path), tmp_path / "work"
    workspace.sync(course, work)
    (work / "02_b" / "b.ipynb").write_text("the student's answers")
    (work / "02_b" / "notes.txt").write_text("the student's notes")
    (course / "02_b" / "b.ipynb").write_text("B2")
    when = dt.datetime(2026, 12, 5, 12, 30, 45)
    aside, copied = workspace.fresh("02_b", course, work, now=when)
    assert aside == work / "02_b.old-20261205-123045"
    assert (aside / "b.ipynb").read_text() == "the student's answers"
    assert (aside / "notes.txt").read_text() == "the student's notes"
    assert copied == ["02_b/b.ipynb", "02_b/data/table.csv"]
    assert (work / "02_b" / "b.ipynb").read_text() == "B2"
    assert workspace.sync(course, work).updated_in_course == []  # the new copy is the current version
    again, _ = workspace.fresh("02_b", course, work, now=when)  # same second: a distinct name, nothing lost
    assert again == work / "02_b.old-20261205-123045-2" and (aside / "b.ipynb").exists()


def test_fresh_of_an_unknown_chapter_names_the_chapters(tmp_path):
    course = _course(tmp_path)
    with pytest.raises(ValueError, match=r"no chapter '2_b'.*chapters: 01_a, 02_b"):
        workspace.fresh("2_b", course, tmp_path / "work")


def test_sync_without_a_course_folder_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no course folder at"):
        workspace.sync(tmp_path / "nowhere", tmp_path / "work")


def test_work_folder_is_ignored_by_git():
    proc = subprocess.run(["git", "check-ignore", "-q", "work/01_perceptron/perceptron.ipynb"], cwd=ROOT)
    assert proc.returncode == 0, "work/ must be in .gitignore: the student's notebooks are never tracked"


def test_lab_configuration_without_an_exchange_turns_off_exactly_the_instructor_and_exchange_parts():
    page = json.loads((lab.WITHOUT_EXCHANGE / "labconfig" / "page_config.json").read_text())
    assert sorted(page["disabledExtensions"]) == [
        "@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:course-list", "@jupyter/nbgrader:create-assignment",
        "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:menu"]
    server = json.loads((lab.WITHOUT_EXCHANGE / "jupyter_server_config.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"] == {
        "nbgrader.server_extensions.assignment_list": False, "nbgrader.server_extensions.course_list": False,
        "nbgrader.server_extensions.formgrader": False}  # validate_assignment stays on


def test_lab_environment_puts_the_student_config_first_and_this_checkout_on_the_path(tmp_path):
    base = {"JUPYTER_CONFIG_PATH": "/site/jupyter", "PYTHONPATH": "/x"}
    without = lab.lab_environment(tmp_path, exchange=False, base=base)
    assert without["JUPYTER_CONFIG_PATH"].split(os.pathsep) == [str(lab.STUDENT_CONFIG), str(lab.WITHOUT_EXCHANGE),
                                                                "/site/jupyter"]
    assert without["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), "/x"]
    with_exchange = lab.lab_environment(tmp_path, exchange=True, base=base)
    assert with_exchange["JUPYTER_CONFIG_PATH"].split(os.pathsep) == [str(lab.STUDENT_CONFIG), "/site/jupyter"]


@pytest.mark.slow  # each case starts an interpreter that imports nbgrader (seconds on a busy machine)
@pytest.mark.parametrize("exists", [True, False])
def test_exchange_is_configured_when_nbgrader_s_exchange_root_exists(tmp_path, exists):
    pytest.importorskip("nbgrader")
    exchange, user = tmp_path / "exchange", tmp_path / "user"
    user.mkdir()
    if exists:
        exchange.mkdir()
    (user / "nbgrader_config.py").write_text(f"c = get_config()\nc.Exchange.root = {str(exchange)!r}\n")
    env = lab.lab_environment(ROOT, exchange=True, base=dict(os.environ, JUPYTER_CONFIG_DIR=str(user)))
    assert lab.exchange_configured(env, cwd=tmp_path) == (exists, str(exchange))
