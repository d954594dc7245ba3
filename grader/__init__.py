"""The course's grading side: nbgrader wiring, check helpers for test cells, safe batch autograding.

- ``grader.checks``: helpers the notebooks' test cells call (``from grader import checks``).
- ``grader/kernel/``: everything that is copied into a submission's sandbox (records, runner, wire format).
- ``grader/trusted/``: plans, judges, messages, source checks, the worker and the sandbox launcher.
- ``grader/nbgrader_config.py``: nbgrader's configuration (solutions/ -> course/).
- ``python -m grader release | check-sync | autograde | lab | nbgrader``: see grader/README.md.

This package imports nothing heavy at import time: nbgrader loads ``grader.trusted.execute`` inside its
own process and the kernels import ``grader.checks`` and ``grader.kernel.runner``.
"""

__all__ = ["checks"]
