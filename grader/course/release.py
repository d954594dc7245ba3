"""Release: regenerate course/ from solutions/ with nbgrader, reproducibly; check that they agree.

``release()`` runs ``nbgrader generate_assignment CHAPTER --force --no-db`` with
grader/nbgrader_config.py (source directory ``solutions/``, release directory ``course/``), then
normalises every generated notebook (no outputs, no execution counts, no timing metadata,
nbformat's canonical JSON: sorted keys, one-space indent, UTF-8, final newline) so that the same
solutions/ always gives byte-for-byte the same course/. ``--no-db``: releasing never touches a
gradebook (autograding builds its own, see grader/trusted/autograde.py).

``check_sync()`` releases into a temporary directory and lists the files that differ from course/.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import nbformat

__all__ = ["REPO_ROOT", "CONFIG", "nbgrader", "chapters", "require_chapters", "release", "normalise_notebook",
           "check_sync", "gradebook", "NbgraderError"]

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).resolve().parents[1] / "nbgrader_config.py"


class NbgraderError(RuntimeError):
    """An nbgrader command failed; the message holds the end of its log."""


def nbgrader_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment for nbgrader (and the kernels it starts) working on the course root ``root``."""
    env = dict(os.environ)
    env["DLCOURSE_COURSE_ROOT"] = str(root)
    env.pop("DLCOURSE_GRADEBOOK", None)
    # The kernels import grader and dlcore from this checkout even without an editable install.
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *paths])
    # nbgrader's gradebook runs the `alembic` script of this environment by name.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.update(extra)
    return env


def ensure_scripts_on_path() -> None:
    """Put this interpreter's scripts directory on PATH (nbgrader's Gradebook runs `alembic` by name)."""
    scripts = str(Path(sys.executable).parent)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])


def gradebook(db_url: str, course_id: str = "dlcourse"):
    """nbgrader's ``Gradebook`` (a context manager) on ``db_url``; it runs this environment's `alembic` by name."""
    from nbgrader.api import Gradebook

    ensure_scripts_on_path()
    return Gradebook(db_url, course_id)


def nbgrader_command(*args: str) -> list[str]:
    # JupyterApp.config_file takes the path without ".py" (traitlets adds it).
    return [sys.executable, "-m", "nbgrader", *args, f"--NbGrader.config_file={CONFIG.with_suffix('')}"]


def nbgrader(*args: str, root: Path = REPO_ROOT, timeout: float | None = None) -> str:
    """Run one nbgrader command on the course root ``root``; returns its log, raises NbgraderError on failure."""
    root = Path(root).resolve()
    proc = subprocess.run(nbgrader_command(*args), cwd=root, env=nbgrader_env(root),
                          capture_output=True, text=True, timeout=timeout)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise NbgraderError(f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n{log[-4000:]}")
    return log


def chapters(source_root: Path = REPO_ROOT, folder: str = "solutions") -> list[str]:
    """Chapter (assignment) folders under solutions/ (or ``folder``) that hold at least one notebook."""
    return sorted({nb.parent.name for nb in (Path(source_root) / folder).glob("[!.]*/*.ipynb")})


def normalise_notebook(path: Path) -> None:
    """Rewrite a released notebook canonically: no outputs, counts or timing metadata."""
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled", "ExecuteTime"):
            cell.metadata.pop(key, None)
    nb.metadata.pop("widgets", None)
    text = nbformat.writes(nb, version=4)
    if not text.endswith("\n"):
        text += "\n"
    Path(path).write_text(text, encoding="utf-8", newline="\n")


def require_chapters(names: Sequence[str] | None, source_root: Path = REPO_ROOT,
                     error: type[Exception] = ValueError) -> list[str]:
    """``names`` (default: every chapter under solutions/); raises ``error`` naming one that is not a chapter."""
    known = chapters(source_root)
    for name in names or ():
        if name not in known:
            raise error(f"no chapter {name!r} with notebooks under {Path(source_root) / 'solutions'} "
                        f"(known: {', '.join(known) or 'none'})")
    return list(names) if names else known


def release(chapter_names: Sequence[str] | None = None, *, source_root: Path = REPO_ROOT,
            release_dir: Path | None = None) -> list[Path]:
    """Generate the student version of each chapter (default: all) into ``release_dir`` (default: course/).

    Returns the written notebooks. Each chapter folder is replaced as a whole.
    """
    source_root = Path(source_root)
    target = Path(release_dir) if release_dir is not None else source_root / "course"
    written: list[Path] = []
    for name in require_chapters(chapter_names, source_root):
        nbgrader("generate_assignment", name, "--force", "--no-db",
                 f"--CourseDirectory.release_directory={target.resolve()}", root=source_root)
        for nb_path in sorted((target / name).glob("*.ipynb")):
            normalise_notebook(nb_path)
            written.append(nb_path)
    return written


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            and ".ipynb_checkpoints" not in p.parts}


def check_sync(*, source_root: Path = REPO_ROOT) -> list[str]:
    """Files of course/ that differ from a fresh release of solutions/ ('' list: in sync)."""
    source_root = Path(source_root)
    course = source_root / "course"
    names = chapters(source_root)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dlcourse-release-") as tmp:
        fresh = Path(tmp)
        release(names, source_root=source_root, release_dir=fresh)       # no chapters: releases nothing
        want = _tree(fresh)
        have = {rel for rel in _tree(course) if rel.split("/", 1)[0] in names}
        for rel in sorted(want | have):
            name = rel.split("/", 1)[0]
            if rel not in have:
                problems.append(f"course/{rel}: missing (run `python -m grader release {name}`)")
            elif rel not in want:
                problems.append(f"course/{rel}: not produced by the release (remove it or add it to solutions/)")
            elif not filecmp.cmp(fresh / rel, course / rel, shallow=False):
                problems.append(f"course/{rel}: differs from the release of solutions/{rel}")
    problems += [f"course/{extra}/: no matching chapter in solutions/" for extra in chapters(source_root, "course")
                 if extra not in names]
    return problems
