"""The course's grading side: nbgrader wiring, check helpers for test cells, safe batch autograding.

- ``grader.checks``: helpers the notebooks' test cells call (``from grader import checks``).
- ``grader/nbgrader_config.py``: nbgrader's configuration (solutions/ -> course/).
- ``python -m grader release | check-sync | autograde | lab | nbgrader``: see grader/README.md.
- batch grading: ``autograde`` (batch, gradebook writer) -> ``worker`` (one submission) -> ``sandbox`` +
  ``_launch`` (the kernel's sandbox), ``recorder`` (in the kernel) and ``replay`` (trusted verdicts).

This package imports nothing heavy at import time: nbgrader loads ``grader.execute`` inside its
own process and the kernels import ``grader.checks`` and ``grader.recorder``.
"""

__all__ = ["checks"]
