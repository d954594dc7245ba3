"""The student's side of the course: a work folder of their own and a lab that shows what they can use.

:mod:`grader.student.workspace`: ``work/``, the student's copy of ``course/``, never overwritten;
:mod:`grader.student.lab`: JupyterLab on it with the student-side nbgrader configuration. Run through
``python3 tasks.py lab`` / ``python3 tasks.py fresh CHAPTER`` (``python -m grader.student lab|fresh``).
Only the standard library is imported here; the lab asks nbgrader about the exchange in a separate interpreter.
"""

__all__ = ["workspace", "lab"]
