"""nbgrader configuration of the student lab (``python3 tasks.py lab``), on its JUPYTER_CONFIG_PATH.

Only what a student's side needs (the instructor's is grader/nbgrader_config.py). The exchange is
deliberately not set here: a course that has one configures it for its students (e.g.
/etc/jupyter/nbgrader_config.py on a hub, see docs/jupyterhub.md), and the lab then shows its panels.
"""

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.course_id = "dlcourse"
# Validate runs the notebook with the same per-cell limit as autograding (grader/nbgrader_config.py),
# so a cell that would be interrupted at grading is interrupted here too.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
