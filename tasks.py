#!/usr/bin/env python3
"""Project tasks with nothing but Python and pip: ``python3 tasks.py lab|fresh|test|release|bench|lint``.

Each task first makes sure ``.venv`` exists with the dependencies it needs (re-installing
only when pyproject.toml changed), then runs inside it. This works the same on Linux,
macOS and Windows, where students rarely have ``make``; the Makefile is a thin alias.

``DLCOURSE_VENV=/path/to/env`` runs the tasks in an environment you manage yourself (a conda
environment, another checkout's ``.venv``): it is used as it is, and nothing is installed into it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
OWN_VENV = "DLCOURSE_VENV" in os.environ
VENV = Path(os.environ["DLCOURSE_VENV"]).resolve() if OWN_VENV else ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
if OWN_VENV and os.name == "nt" and not PY.exists():
    PY = VENV / "python.exe"  # a conda environment on Windows

# How long each command takes, as README.md states it (tests/test_environment.py checks they agree).
DURATIONS = {
    "lab": ("the first run installs the environment (97 s measured with a fast network); later ones start "
            "in seconds"),
    "test --fast": ("1-2 minutes on a quiet 2-core machine (about 100 s of CPU time); 5.5 minutes measured while "
                    "other jobs kept both cores busy"),
    "test": ("12 minutes measured on a quiet 2-core machine from a fresh clone with a warm pip cache (pytest 11 "
             "minutes, all six chapters); longer on a loaded host (16 minutes for the 10-minute suite of "
             "2026-12-05 when its host ran at about half speed)"),
}


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)


def _checkout_env() -> dict[str, str]:
    """The environment for a task; with DLCOURSE_VENV, this checkout first on PYTHONPATH.

    An environment made elsewhere may hold an editable install of another checkout; putting this one
    first makes every process of the task (pytest's subprocesses, kernels) run this checkout's code.
    """
    env = dict(os.environ)
    if OWN_VENV:
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
    return env


def ensure_venv(extra: str) -> None:
    """Create .venv and install the project with ``extra`` unless pyproject.toml is unchanged since."""
    if OWN_VENV:
        if not PY.exists():
            sys.exit(f"DLCOURSE_VENV={VENV}: no Python interpreter at {PY}")
        return
    if not PY.exists():
        print(f"Creating the virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = VENV / f".installed-{extra}-{digest}"
    # 'dev' includes 'course', so a test environment can also start the lab.
    if stamp.exists() or (extra == "course" and (VENV / f".installed-dev-{digest}").exists()):
        return
    if _run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip") != 0:
        sys.exit("could not upgrade pip in .venv")
    if _run(PY, "-m", "pip", "install", "--quiet", "-e", f".[{extra}]") != 0:
        sys.exit(f"installing the project with the '{extra}' extra failed (see pip's message above)")
    stamp.touch()


def lab(args: list[str]) -> int:
    """JupyterLab on work/, the student's own copy of course/ (see grader/student/).

    New chapters and notebooks of course/ are copied into work/ first; a file already in work/ is
    never replaced. Extra arguments go to ``jupyter lab`` (e.g. ``--no-browser --port=8899``).
    """
    ensure_venv("course")
    _run(PY, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3", "--display-name", "Python 3 (dlcourse)")
    return _run(PY, "-m", "grader.student", "--root", ROOT, "lab", *args, env=_checkout_env())


def fresh(args: list[str]) -> int:
    """A new copy of one chapter in work/ (``fresh 02_backprop``); the old copy is renamed, never deleted."""
    if len(args) != 1:
        sys.exit("usage: python3 tasks.py fresh CHAPTER   (e.g. 02_backprop; the chapters are the folders of course/)")
    ensure_venv("course")
    return _run(PY, "-m", "grader.student", "--root", ROOT, "fresh", *args, env=_checkout_env())


def test(args: list[str]) -> int:
    """Lint, then the whole test suite (what CI runs); ``--fast`` leaves out the tests marked slow.

    ``test --fast`` is the loop to run while working: the library on every backend and the grader's
    checks, without training runs, notebook executions and autograding pipelines (``-m "not slow"``).
    """
    ensure_venv("dev")
    if _run(PY, "-m", "ruff", "check", "dlcore", "grader", "tests", "benchmarks", "tasks.py") != 0:
        return 1
    selection = ["-m", "not slow"] if "--fast" in args else []
    args = [a for a in args if a != "--fast"]
    workers = os.environ.get("PYTEST_WORKERS", "2")
    # Parallelism comes from the pytest workers; a multi-threaded BLAS inside each worker would
    # oversubscribe the cores, and OpenBLAS's spinning threads then slow everything 10x or more.
    env = _checkout_env()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return _run(PY, "-m", "pytest", "-n", workers, *selection, *args, env=env)


def release(args: list[str]) -> int:
    """Regenerate course/ from solutions/ with nbgrader (see grader/README)."""
    ensure_venv("course")
    return _run(PY, "-m", "grader", "release", *args, env=_checkout_env())


def bench(args: list[str]) -> int:
    """Run the benchmarks (PyTorch is used as the reference when installed).

    OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on some machines to force an older, slower BLAS
    kernel) are removed for this command only, never for the tests; each benchmark prints the
    kernel that ran.
    """
    ensure_venv("dev")
    env = {k: v for k, v in _checkout_env().items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    return _run(PY, "-m", "benchmarks", *args, env=env)


def lint(args: list[str]) -> int:
    """ruff on the library, the grader, the tests, the benchmarks and this file."""
    ensure_venv("dev")
    return _run(PY, "-m", "ruff", "check", "dlcore", "grader", "tests", "benchmarks", "tasks.py", *args)


TASKS = {"lab": lab, "fresh": fresh, "test": test, "release": release, "bench": bench, "lint": lint}


def usage() -> str:
    lines = [f"usage: python3 tasks.py {{{'|'.join(TASKS)}}} [args...]", ""]
    for name, task in TASKS.items():
        lines.append(f"  {name:8} {(task.__doc__ or '').strip().splitlines()[0]}")
    lines += ["", "Expected durations:"] + [f"  python3 tasks.py {cmd}: {text}" for cmd, text in DURATIONS.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        sys.exit(usage())
    sys.exit(TASKS[sys.argv[1]](sys.argv[2:]))
