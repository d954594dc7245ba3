"""The student lab: JupyterLab on ``work/`` with what a student can use (``python3 tasks.py lab``).

Per launch, writing nothing into the environment (so ``python -m grader lab``, the instructor's lab, keeps
every panel), the lab puts on ``JUPYTER_CONFIG_PATH`` ``grader/student/jupyter/`` (the student-side
``nbgrader_config.py``: course id, Validate's cell limit) and, unless an nbgrader exchange is configured,
``grader/student/without-exchange/``, which turns off nbgrader's formgrader, assignment_list and course_list
server extensions and the matching JupyterLab plugins (and the ``menu`` that opens them): without an
exchange those panels can only fail and fill the log with ``ExchangeError`` tracebacks. Validate stays on.
An exchange counts as configured when nbgrader, reading the same configuration directories the server
will, uses a plugin exchange (an HTTP exchange such as ngshare) or its directory exchange's root exists.
The reasons: docs/decisions.md, "The student lab shows what a student can use".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from grader.student import workspace

__all__ = ["STUDENT_CONFIG", "WITHOUT_EXCHANGE", "exchange_configured", "lab_environment", "prepend_paths", "start"]

STUDENT_CONFIG = Path(__file__).resolve().parent / "jupyter"
WITHOUT_EXCHANGE = STUDENT_CONFIG.parent / "without-exchange"


def prepend_paths(env: dict[str, str], name: str, paths: list[str]) -> None:
    """Put ``paths`` first on the path list ``env[name]`` (e.g. PYTHONPATH), keeping the rest."""
    env[name] = os.pathsep.join(paths + [p for p in env.get(name, "").split(os.pathsep) if p])


def exchange_configured(env: dict[str, str], cwd: Path | None = None) -> tuple[bool, str]:
    """Whether nbgrader, run in ``cwd`` with ``env``, has an exchange; and where it is (or would be)."""
    code = (
        "from nbgrader.apps import NbGrader\n"
        "from nbgrader.exchange import ExchangeFactory\n"
        "from nbgrader.exchange.default import Exchange\n"
        "import os\n"
        "app = NbGrader(); app.load_config_file()\n"
        "cls = ExchangeFactory(config=app.config).exchange\n"
        "if not issubclass(cls, Exchange): print('plugin', cls.__module__ + '.' + cls.__name__)\n"
        "else:\n"
        "    root = Exchange(config=app.config).root\n"
        "    print('directory' if os.path.isdir(root) else 'missing', root)\n"
    )
    # A separate interpreter: nbgrader reads JUPYTER_CONFIG_PATH when jupyter_core computes its paths.
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
                          check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"could not read nbgrader's configuration:\n{proc.stderr[-2000:]}")
    kind, _, where = lines[-1].partition(" ")
    return kind != "missing", where


def lab_environment(root: Path, *, exchange: bool, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the student lab for the checkout ``root``."""
    env = dict(os.environ if base is None else base)
    prepend_paths(env, "JUPYTER_CONFIG_PATH", [str(STUDENT_CONFIG)] + ([] if exchange else [str(WITHOUT_EXCHANGE)]))
    # Kernels import dlcore and grader from this checkout, whichever environment runs them.
    prepend_paths(env, "PYTHONPATH", [str(root)])
    return env


def start(root: Path, jupyter_args: list[str]) -> int:
    """Bring ``work/`` up to date with ``course/`` (adding only) and run JupyterLab on it."""
    root = Path(root).resolve()
    work = root / "work"
    report = workspace.sync(root / "course", work)
    print("Your notebooks are in work/ (your own copy of course/: git and releases never change it).")
    for rel in report.copied:
        print(f"  copied course/{rel} -> work/{rel}")
    for rel in report.updated_in_course:
        chapter = rel.split("/", 1)[0]
        print(f"  course/{rel} is newer than your copy, which is unchanged. For the new version run\n"
              f"    python3 tasks.py fresh {chapter}\n"
              f"  (your copy of {chapter} is kept, renamed {chapter}.old-<date>-<time>).")
    try:
        exchange, exchange_root = exchange_configured(lab_environment(root, exchange=True), cwd=work)
    except RuntimeError as exc:  # a broken nbgrader_config.py elsewhere: say so, start the lab anyway
        print(f"{exc}\nStarting without nbgrader's exchange panels.", file=sys.stderr)
        exchange, exchange_root = False, ""
    if exchange:
        print(f"nbgrader exchange: {exchange_root} (Assignment List, Courses, Formgrader and Create Assignment shown)")
    else:
        print("nbgrader: no exchange configured, so the lab offers Validate only "
              "(the Assignment List and Courses panels need an exchange set up by your course)")
    extra = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # containers, CI
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={work}", *extra, *jupyter_args]
    return subprocess.call(cmd, cwd=work, env=lab_environment(root, exchange=exchange))
