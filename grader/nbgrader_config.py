"""nbgrader configuration of the dlcourse course: only what differs from nbgrader's defaults (grader/README.md,
"nbgrader directly, and the JupyterLab UI"). The course root is the repository: ``solutions/`` the source,
``course/`` the release. ``DLCOURSE_COURSE_ROOT`` and ``DLCOURSE_GRADEBOOK`` move the course root and the
gradebook (the batch autograder works on a scratch copy). By hand: nbgrader <command> --config grader/nbgrader_config.py
"""

import os

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

_root = os.environ.get("DLCOURSE_COURSE_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --- course directory --------------------------------------------------------------------
c.CourseDirectory.root = _root
c.CourseDirectory.course_id = "dlcourse"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "course"
c.CourseDirectory.db_url = os.environ.get("DLCOURSE_GRADEBOOK") or "sqlite:///" + os.path.join(_root, "gradebook.db")
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*"]

# --- student version ---------------------------------------------------------------------
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# --- autograding ---------------------------------------------------------------------------
# Per-cell time limit; a cell that runs longer is interrupted (nbgrader's default) and scores zero.
c.Execute.timeout = 60
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

# --- feedback ------------------------------------------------------------------------------------
# Feedback HTML through the sanitizing exporter (no script, event handler or javascript: URL from
# student content), also for the Formgrader's "Generate Feedback" button and plain nbgrader.
c.GenerateFeedback.exporter_class = "grader.trusted.feedback.SafeFeedbackExporter"

# --- exchange ------------------------------------------------------------------------------------
# nbgrader's collect follows symbolic links in a student's inbound folder; this one copies them as links,
# which the autograder refuses (grader/course/exchange.py), also for the Formgrader's "Collect" button.
c.ExchangeFactory.collect = "grader.course.exchange.LinkSafeCollect"
