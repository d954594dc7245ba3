#!/usr/bin/env python3
"""Project tasks with nothing but Python and pip: ``python3 tasks.py lab|test|release|bench|lint``.

Each task first makes sure ``.venv`` exists with the dependencies it needs (re-installing
only when pyproject.toml changed), then runs inside it. This works the same on Linux,
macOS and Windows, where students rarely have ``make``; the Makefile is a thin alias.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)


def ensure_venv(extra: str) -> None:
    """Create .venv and install the project with ``extra`` unless pyproject.toml is unchanged since."""
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
    """Start JupyterLab on the student notebooks in course/."""
    ensure_venv("course")
    _run(PY, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3", "--display-name", "Python 3 (dlcourse)")
    extra = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # containers, CI
    return _run(BIN / "jupyter", "lab", f"--ServerApp.root_dir={ROOT / 'course'}", *extra, *args)


def test(args: list[str]) -> int:
    """Lint, then the whole test suite (library on every backend, notebooks, grading)."""
    ensure_venv("dev")
    if _run(PY, "-m", "ruff", "check", "dlcore", "grader", "tests", "benchmarks", "tasks.py") != 0:
        return 1
    workers = os.environ.get("PYTEST_WORKERS", "2")
    # Parallelism comes from the pytest workers; a multi-threaded BLAS inside each worker would
    # oversubscribe the cores, and OpenBLAS's spinning threads then slow everything 10x or more.
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return _run(PY, "-m", "pytest", "-n", workers, *args, env=env)


def release(args: list[str]) -> int:
    """Regenerate course/ from solutions/ with nbgrader (see grader/README)."""
    ensure_venv("course")
    return _run(PY, "-m", "grader", "release", *args)


def bench(args: list[str]) -> int:
    """Run the benchmarks (PyTorch is used as the reference when installed).

    OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on some machines to force an older, slower BLAS
    kernel) are removed for this command only, never for the tests; each benchmark prints the
    kernel that ran.
    """
    ensure_venv("dev")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    return _run(PY, "-m", "benchmarks", *args, env=env)


def lint(args: list[str]) -> int:
    ensure_venv("dev")
    return _run(PY, "-m", "ruff", "check", "dlcore", "grader", "tests", "benchmarks", "tasks.py", *args)


TASKS = {"lab": lab, "test": test, "release": release, "bench": bench, "lint": lint}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(TASKS)}}} [args...]")
    sys.exit(TASKS[sys.argv[1]](sys.argv[2:]))
