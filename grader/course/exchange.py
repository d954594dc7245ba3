"""nbgrader's exchange on a local (or shared) directory: what is in it, and the student's side of it.

The exchange's layout and the instructor's side (workflow.py): docs/instructor-workflow.md. :class:`StudentClient`
rehearses a term with several students as one Unix user (the tests do): a home directory each and
``--student=<id>``, otherwise exactly the commands a student types ("Rehearsing a term without a hub").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.utils import ignore_patterns, parse_utc

from grader.course.release import NbgraderError

__all__ = ["COURSE_ID", "inbound", "StudentClient", "LinkSafeCollect"]

COURSE_ID = "dlcourse"


def inbound(exchange: Path | str, chapter: str, course_id: str = COURSE_ID) -> list[tuple[datetime, str]]:
    """The chapter's submissions waiting in the exchange (all versions) as (timestamp in naive UTC, nbgrader's
    convention, student id), oldest first; names nbgrader cannot read are left out."""
    found = []
    for path in (Path(exchange) / course_id / "inbound").glob(f"*+{chapter}+*"):
        student, chapter_name, stamp = path.name.rsplit("+", 3)[:3]   # ids may not contain '+'; nbgrader splits so
        try:
            if path.is_dir() and chapter_name == chapter:
                found.append((parse_utc(stamp), student))
        except (ValueError, OverflowError):
            continue
    return sorted(found)


class LinkSafeCollect(ExchangeCollect):
    """nbgrader's ``collect``, except that a link in a submission is copied as a link, never followed.

    nbgrader copies an inbound folder (which its student can write) with ``shutil.copytree``, which follows
    links: a submitted ``mini.ipynb`` linking to ``solutions/…`` or to another student's collected notebook
    would be collected as that file's content and graded as the student's own work. Copied as a link, it
    reaches the autograder, which refuses the submission with its reason. A submission folder that is itself
    a link is collected as a folder of links to what it points at (the same refusal). The folder is opened
    without following a link and copied through its descriptor, so it cannot be swapped for a link between
    the check and the copy. Selected by grader/nbgrader_config.py (``ExchangeFactory.collect``).
    """

    def do_copy(self, src: str, dest: str, log=None) -> None:
        try:
            fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:                                   # a link (or not a folder): its entries as links
            os.makedirs(dest)
            names = os.listdir(src) if os.path.isdir(src) else []
            for name in names:
                os.symlink(os.path.join(src, name), os.path.join(dest, name))
            self.log.warning("%s is a link: collected as links, which the autograder refuses", src)
            return
        try:
            here = f"/proc/self/fd/{fd}" if os.path.isdir(f"/proc/self/fd/{fd}") else src
            if self.get_size(here) > 1000 * self.coursedir.max_dir_size:
                raise RuntimeError(f"{src} is larger than CourseDirectory.max_dir_size")
            shutil.copytree(here, dest, symlinks=True,
                            ignore=ignore_patterns(exclude=self.coursedir.ignore, include=self.coursedir.include,
                                                   max_file_size=self.coursedir.max_file_size, log=self.log))
        finally:
            os.close(fd)
        if self.coursedir.groupshared:                   # as nbgrader does: the copy stays writable by the group
            for folder, _dirs, files in os.walk(dest):
                os.chmod(folder, (os.stat(folder).st_mode | 0o2770) & 0o2777)
                for path in (os.path.join(folder, f) for f in files):
                    if not os.path.islink(path):
                        os.chmod(path, (os.stat(path).st_mode | 0o660) & 0o777)


class StudentClient:
    """One (simulated) student: fetch, submit and fetch feedback with nbgrader's own commands.

    ``home`` is the student's home directory: assignments are fetched into ``home/<chapter>/``,
    feedback into ``home/<chapter>/feedback/<timestamp>/``, and nbgrader's submission cache (which
    ``fetch_feedback`` needs) lives in ``home/.local/share/jupyter/nbgrader_cache``.
    """

    def __init__(self, student_id: str, home: Path | str, exchange: Path | str):
        self.student_id = student_id
        self.home = Path(home).resolve()
        self.exchange = Path(exchange).resolve()
        self.home.mkdir(parents=True, exist_ok=True)

    @property
    def cache(self) -> Path:
        return self.home / ".local" / "share" / "jupyter" / "nbgrader_cache"

    def assignment_dir(self, chapter: str) -> Path:
        return self.home / chapter

    def fetch(self, chapter: str) -> Path:
        """``nbgrader fetch_assignment CHAPTER --course dlcourse``; returns the fetched folder."""
        self._run("fetch_assignment", chapter)
        return self.assignment_dir(chapter)

    def submit(self, chapter: str) -> str:
        """``nbgrader submit CHAPTER --course dlcourse``; returns the submission's timestamp text.

        nbgrader caches each submission as <student>+<chapter>+<timestamp>: this one is the newest.
        """
        self._run("submit", chapter)
        newest = max((self.cache / COURSE_ID).glob(f"*+{chapter}+*"))
        return (newest / "timestamp.txt").read_text().strip()

    def fetch_feedback(self, chapter: str) -> list[Path]:
        """``nbgrader fetch_feedback CHAPTER --course dlcourse``; returns every feedback file the student has."""
        self._run("fetch_feedback", chapter)
        return sorted((self.assignment_dir(chapter) / "feedback").glob("*/*.html"))

    def _run(self, step: str, chapter: str) -> None:
        """``nbgrader STEP CHAPTER`` as a student runs it (``--student`` for the simulation), in the student's
        environment: their own home and Jupyter directories, no instructor configuration."""
        cmd = [sys.executable, "-m", "nbgrader", step, chapter, f"--course={COURSE_ID}",
               f"--Exchange.root={self.exchange}", f"--student={self.student_id}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DLCOURSE_", "JUPYTER_")) and k != "PYTHONPATH"}
        env.update(HOME=str(self.home), JUPYTER_DATA_DIR=str(self.cache.parent),
                   JUPYTER_CONFIG_DIR=str(self.home / ".jupyter"), JUPYTER_RUNTIME_DIR=str(self.home / ".runtime"))
        proc = subprocess.run(cmd, cwd=self.home, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise NbgraderError(f"{self.student_id}: nbgrader {step} {chapter} failed "
                                       f"(exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
