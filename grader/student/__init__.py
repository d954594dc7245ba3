"""The student's side of the course: a work folder of their own and a lab that shows what they can use.

- :mod:`grader.student.workspace`: ``work/`` (ignored by git) is the student's copy of ``course/``;
  files are added as chapters appear and never overwritten; ``fresh`` renames a chapter's old copy
  aside instead of deleting it.
- :mod:`grader.student.lab`: JupyterLab on ``work/`` with the student-side nbgrader configuration
  in ``jupyter/`` and, when no nbgrader exchange is configured, the instructor and exchange panels
  turned off by the configuration in ``without-exchange/``.

Run through ``python3 tasks.py lab`` / ``python3 tasks.py fresh CHAPTER`` (or
``python -m grader.student lab|fresh``). Only the standard library is imported here; the lab
asks nbgrader about the exchange in a separate interpreter.
"""

__all__ = ["workspace", "lab"]
