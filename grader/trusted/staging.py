"""Which folders of a submissions directory are submissions, and copying one into the work directory.

Every folder or link in SUBMISSIONS is one :class:`Submission`, graded or refused with a reason. Links are
never followed: every file is opened relative to its folder's descriptor with ``O_NOFOLLOW`` and its link
count is checked on the open descriptor, so a link swapped in after the check is refused too; a notebook
with a second hard link is refused like a symbolic link. Ids nbgrader or the file system cannot carry are
refused (glob characters: nbgrader globs paths built from the id; more than :data:`MAX_ID_BYTES`:
results/<id>.json must fit the 255-byte file-name limit). See grader/README.md, "Autograde a class".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from grader.trusted.report import safe_text

__all__ = ["Submission", "find_submissions", "check_id", "stage", "MAX_ID_BYTES"]

MAX_ID_BYTES = 128
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_BLOCK = 1 << 20


@dataclass(frozen=True)
class Submission:
    """One entry of the submissions directory: ``refused`` is '' when it is graded."""

    student: str
    root: Path                          # the submissions directory
    path: tuple[str, ...]               # (student,) or (student, chapter): the folder holding the notebooks
    files: tuple[str, ...] = ()         # regular files to stage (notebooks, timestamp.txt, others)
    refused: str = ""                   # why it is not graded
    digest: str = ""                    # of the staged files' names and contents


def check_id(name: str) -> str:
    """Why the folder name ``name`` cannot be a student id here ('' when it can)."""
    if any(not ch.isprintable() for ch in name):
        return "the folder name contains control characters; rename it to the student's id"
    if name.startswith("."):
        return ("the folder name starts with '.' (nbgrader skips hidden folders: no feedback, no Formgrader "
                "row); rename it to the student's id")
    glob = sorted({ch for ch in name if ch in "*?[]"})
    if glob:
        return (f"the folder name contains {' '.join(glob)} (nbgrader reads the gradebook's paths as glob "
                "patterns); rename it to the student's id")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_ID_BYTES:
        return (f"the folder name is longer than {MAX_ID_BYTES} bytes (it becomes part of file names in the "
                "work directory); rename it to the student's id")
    return ""


def find_submissions(submissions: Path, chapter: str) -> list[Submission]:
    """Every folder (or link) in ``submissions``, sorted by name, graded or refused with the reason."""
    found = []
    root_fd = os.open(submissions, _DIR_FLAGS & ~os.O_NOFOLLOW)    # the instructor's own path may be a link
    try:
        for entry in sorted(os.scandir(root_fd), key=lambda e: e.name):
            if entry.is_file(follow_symlinks=False):
                continue                                             # a file beside the folders: not a student
            found.append(_submission(root_fd, submissions, entry.name, chapter))
    finally:
        os.close(root_fd)
    return found


def _submission(root_fd: int, root: Path, name: str, chapter: str) -> Submission:
    why = check_id(name)
    if why:
        return Submission(name, root, (name,), refused=why)
    try:
        student_fd = os.open(name, _DIR_FLAGS, dir_fd=root_fd)
    except OSError as exc:
        return Submission(name, root, (name,), refused=_link_reason(root_fd, name, "the student folder", exc))
    try:
        base_fd, path = student_fd, (name,)
        with contextlib.suppress(FileNotFoundError):
            info = os.stat(chapter, dir_fd=student_fd, follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                return Submission(name, root, path, refused=_link_reason(
                    student_fd, chapter, f"the chapter folder {name}/{chapter}", None))
            if stat.S_ISDIR(info.st_mode):
                base_fd, path = os.open(chapter, _DIR_FLAGS, dir_fd=student_fd), (name, chapter)
        try:
            return _files(name, root, path, base_fd)
        finally:
            if base_fd != student_fd:
                os.close(base_fd)
    finally:
        os.close(student_fd)


def _files(name: str, root: Path, path: tuple[str, ...], base_fd: int) -> Submission:
    files = []
    for entry in sorted(os.scandir(base_fd), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            why = _link_reason(base_fd, entry.name, entry.name, None)
        elif entry.is_file(follow_symlinks=False):
            why = _hard_link_reason(entry.name, entry.stat(follow_symlinks=False).st_nlink)
        elif not entry.is_dir(follow_symlinks=False):
            why = f"{safe_text(entry.name)} is not a regular file"
        else:
            continue
        if not why:
            files.append(entry.name)
        elif entry.name.endswith(".ipynb") or entry.name == "timestamp.txt":
            return Submission(name, root, path, refused=why)
        # else a file the grader does not use anyway: never followed, never copied
    try:
        return Submission(name, root, path, tuple(files), digest=_copy(base_fd, files))
    except OSError as exc:
        return Submission(name, root, path, refused=f"{safe_text(exc.filename or 'a file')} could not be read "
                                                    f"({exc.strerror or exc})")


def _link_reason(dir_fd: int, name: str, what: str, exc: OSError | None) -> str:
    try:
        target = os.readlink(name, dir_fd=dir_fd)
    except OSError:
        if exc is not None:
            return f"{what} could not be opened ({exc.strerror or exc})"
        target = "?"
    return (f"{safe_text(what)} is a symbolic link (to {safe_text(target)}); links are never followed, "
            "submit the files themselves")


def _hard_link_reason(name: str, links: int) -> str:
    """Why a regular file with ``links`` hard links is not used ('' for one link)."""
    return "" if links <= 1 else (f"{safe_text(name)} has {links} hard links (it is also another file, perhaps "
                                  "another student's); hard links are not accepted, submit the files themselves")


def _copy(dir_fd: int, files: list[str] | tuple[str, ...], dest: Path | None = None) -> str:
    """The digest of ``files`` (names and contents) in the folder ``dir_fd``, each copied into ``dest`` unless None.

    Each is opened without following a link and must still be a regular file with one link (``OSError`` else).
    """
    h = hashlib.sha256()
    for name in files:
        h.update(name.encode("utf-8", "surrogateescape") + b"\0")
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(0, "not a regular file", name)
            if info.st_nlink > 1:
                raise OSError(0, _hard_link_reason(name, info.st_nlink), name)
            os.set_blocking(fd, True)
            with open(dest / name, "wb") if dest is not None else contextlib.nullcontext() as out:
                while block := os.read(fd, _BLOCK):
                    h.update(block)
                    if out is not None:
                        out.write(block)
        finally:
            os.close(fd)
    return h.hexdigest()


def _open_path(root: Path, path: tuple[str, ...]) -> int:
    """A descriptor of root/path[0]/path[1]/..., each component opened without following a link."""
    fd = os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)
    try:
        for part in path:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def stage(sub: Submission, dest: Path) -> str:
    """Copy the submission's files into ``dest`` (replaced), without following links; returns their digest.

    A file that became a link or vanished since :func:`find_submissions` raises ``OSError``.
    """
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    base_fd = _open_path(sub.root, sub.path)
    try:
        return _copy(base_fd, sub.files, dest)
    finally:
        os.close(base_fd)
