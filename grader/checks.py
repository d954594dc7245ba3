"""The checks the notebooks' test cells call: ``from grader import checks``; ``check_<kind>`` for every kind.

In JupyterLab a call plans, records and judges in this process (grader/kinds.py); a failure shows its
message alone, without grader frames. See grader/README.md, "Check helpers". The kernel's copy of this
module (batch grading) has no kinds: there, every attribute but its own is an AttributeError.
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
