"""nbgrader configuration of the dlcourse course (see grader/README.md).

nbgrader's course directory is the repository root: ``solutions/`` is the source directory
(instructor notebooks with solutions and hidden tests) and ``course/`` the release directory
(what students get), so ``nbgrader generate_assignment`` writes straight into ``course/``.
Submissions, autograded copies, feedback and the gradebook live next to them in folders that
.gitignore excludes (``submitted/``, ``autograded/``, ``feedback/``, ``gradebook.db``).

Used by ``python -m grader ...`` and by hand:  nbgrader <command> --config grader/nbgrader_config.py
Environment overrides (the batch autograder uses them to work on a scratch copy):
  DLCOURSE_COURSE_ROOT   another course root (default: the repository root)
  DLCOURSE_GRADEBOOK     another gradebook URL (default: sqlite:///<root>/gradebook.db)
"""

import os

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

_root = os.environ.get("DLCOURSE_COURSE_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --- course directory --------------------------------------------------------------------
c.CourseDirectory.root = _root
c.CourseDirectory.course_id = "dlcourse"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "course"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = os.environ.get("DLCOURSE_GRADEBOOK") or "sqlite:///" + os.path.join(_root, "gradebook.db")
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*"]

# --- student version ---------------------------------------------------------------------
c.ClearSolutions.begin_solution_delimeter = "BEGIN SOLUTION"
c.ClearSolutions.end_solution_delimeter = "END SOLUTION"
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.enforce_metadata = True
c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"
c.ClearHiddenTests.enforce_metadata = True

# --- autograding ---------------------------------------------------------------------------
# Per-cell time limit; a cell that runs longer is interrupted and scores zero.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
# nbgrader's Execute replaced by grader.trusted.execute.RobustExecute: same behaviour, plus a wall-clock
# limit per notebook, survival of a dead or wedged kernel (the cells that ran keep their points)
# and a journal of executed cells from which a killed autograde run can still be scored.
c.Autograde.autograde_preprocessors = [
    "grader.trusted.execute.RobustExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.RobustExecute.notebook_timeout = 600
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100

# --- feedback ------------------------------------------------------------------------------------
# Feedback HTML through the sanitizing exporter (no script, event handler or javascript: URL from
# student content), also for the Formgrader's "Generate Feedback" button and plain nbgrader.
c.GenerateFeedback.exporter_class = "grader.trusted.feedback.SafeFeedbackExporter"
