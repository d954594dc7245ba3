"""nbgrader wiring: the configuration maps solutions/ -> course/, and nbgrader's JupyterLab 4 extensions are on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets.config.loader import PyFileConfigLoader

from grader.course.release import CONFIG, REPO_ROOT

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
BIN = Path(sys.executable).parent


def _load(monkeypatch, **env: str):
    for key in ("DLCOURSE_COURSE_ROOT", "DLCOURSE_GRADEBOOK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return PyFileConfigLoader(CONFIG.name, path=str(CONFIG.parent)).load_config()


def test_config_maps_solutions_to_course(monkeypatch):
    """The values nbgrader's own classes take from the configuration (set there or nbgrader's defaults)."""
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions, Execute, LimitOutput

    c = _load(monkeypatch)
    cd = CourseDirectory(config=c)
    assert Path(cd.root) == REPO_ROOT
    assert (cd.source_directory, cd.release_directory) == ("solutions", "course")
    assert (cd.submitted_directory, cd.autograded_directory, cd.feedback_directory) == \
        ("submitted", "autograded", "feedback")
    assert cd.course_id == "dlcourse"
    assert cd.db_url == f"sqlite:///{REPO_ROOT / 'gradebook.db'}"
    clear, hidden = ClearSolutions(config=c), ClearHiddenTests(config=c)
    assert clear.code_stub == {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    assert (clear.begin_solution_delimeter, clear.end_solution_delimeter) == ("BEGIN SOLUTION", "END SOLUTION")
    assert (hidden.begin_test_delimeter, hidden.end_test_delimeter) == ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
    assert clear.enforce_metadata and hidden.enforce_metadata
    assert (LimitOutput(config=c).max_lines, LimitOutput(config=c).max_traceback) == (1000, 100)
    execute = Execute(config=c)
    assert execute.timeout == 60 and execute.interrupt_on_timeout and c.RobustExecute.notebook_timeout > 0
    # the submitted/autograded/feedback folders and the gradebook are never committed
    ignored = (REPO_ROOT / ".gitignore").read_text().split()
    assert {"/submitted/", "/autograded/", "/feedback/", "gradebook.db"} <= set(ignored)


def test_config_follows_a_scratch_root(monkeypatch, tmp_path):
    c = _load(monkeypatch, DLCOURSE_COURSE_ROOT=str(tmp_path))
    assert c.CourseDirectory.root == str(tmp_path)
    assert c.CourseDirectory.db_url == f"sqlite:///{tmp_path / 'gradebook.db'}"


def test_autograde_pipeline_is_nbgraders_with_robust_execute(monkeypatch):
    from nbgrader.converters.autograde import Autograde

    classes = Autograde.class_traits()["autograde_preprocessors"].default()
    default = [f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__name__}" for cls in classes]
    configured = _load(monkeypatch).Autograde.autograde_preprocessors
    assert configured[0] == "grader.trusted.execute.RobustExecute"
    assert configured[1:] == default[1:], "apart from Execute, the autograde pipeline must stay nbgrader's own"
    from nbgrader.preprocessors import Execute

    from grader.trusted.execute import RobustExecute
    assert issubclass(RobustExecute, Execute)


def _listing(*args: str) -> str:
    env = dict(os.environ, PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    proc = subprocess.run([str(BIN / "jupyter"), *args], capture_output=True, text=True, env=env, timeout=120)
    return _ANSI.sub("", proc.stdout + proc.stderr)


@pytest.mark.skipif(not (BIN / "jupyter").exists(), reason="jupyter is not installed in this environment")
def test_nbgrader_lab_extension_is_installed_and_enabled_on_jupyterlab_4():
    listing = _listing("labextension", "list")
    assert re.search(r"JupyterLab v4\.", listing), listing
    line = next((ln for ln in listing.splitlines() if "@jupyter/nbgrader" in ln), "")
    assert re.search(r"@jupyter/nbgrader v0\.9\.\d+ enabled\s+OK", line), f"nbgrader's extension: {line!r}\n{listing}"


@pytest.mark.skipif(not (BIN / "jupyter").exists(), reason="jupyter is not installed in this environment")
def test_nbgrader_server_extensions_are_enabled():
    listing = _listing("server", "extension", "list")
    for ext in ("formgrader", "assignment_list", "course_list", "validate_assignment"):
        assert re.search(rf"nbgrader\.server_extensions\.{ext}\s+enabled", listing), f"{ext} not enabled:\n{listing}"
    assert "formgrader  OK" in listing or re.search(r"formgrader\s+OK", listing)


def test_formgrader_sees_the_course_config_as_started_by_grader_lab(tmp_path):
    """`python -m grader lab` puts grader/ on JUPYTER_CONFIG_PATH; the Formgrader then uses solutions/ and course/."""
    code = ("from nbgrader.server_extensions.formgrader.formgrader import FormgradeExtension\n"
            f"f = FormgradeExtension(); f.root_dir = {str(REPO_ROOT)!r}; f.initialize([])\n"
            "print(f.coursedir.root, f.coursedir.source_directory, f.coursedir.release_directory, f.url_prefix)")
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(REPO_ROOT / "grader"))
    env.pop("DLCOURSE_COURSE_ROOT", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(REPO_ROOT), "solutions", "course", "."]
