"""The checks the notebooks' test cells call: ``from grader import checks``.

A test cell is a list of calls ``checks.check_<kind>(StudentName, "Reference", option=literal, ...)``
(see grader/kinds.py for the contract and grader/README.md for the kinds). In JupyterLab each call
plans (trusted: seeded inputs, dlcore's reference), records (the student's code on the inputs) and
judges in this process, and prints one line "✔ …" or fails with a message alone (no grader frames).
In batch grading the same calls are read from the source notebook and planned and judged outside the
kernel, which only records (grader/kernel/runner.py).
"""

from __future__ import annotations

from typing import Any


def _show_message_only(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> None:
    """IPython: a failed check shows its message alone, without the grader's frames."""
    shell._showtraceback(etype, value, [f"{etype.__name__}: {value}"])


def _hide_frames() -> None:
    try:
        from IPython import get_ipython

        from grader.trusted.messages import CheckFailed
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "_dlc_hidden", False) is False:
        shell.set_custom_exc((CheckFailed,), _show_message_only)
        shell._dlc_hidden = True


def __getattr__(name: str) -> Any:
    """``check_<kind>`` for every registered kind."""
    if name.startswith("check_"):
        try:
            from grader import kinds
        except ImportError:  # the kernel's copy of the grader: no plans, no judges
            raise AttributeError(f"checks.{name} is not available while grading: the grader runs the tests "
                                 "itself") from None
        kind = name[len("check_"):]
        fn = kinds.helper(kind)
        if fn is None:
            raise AttributeError(f"module 'grader.checks' has no attribute {name!r}{kinds.broken(kind)}")
        _hide_frames()
        return fn
    raise AttributeError(f"module 'grader.checks' has no attribute {name!r}")
