"""Batch autograding (``python -m grader autograde``): every submission of one chapter, each graded by its
own worker process (grader/trusted/worker.py) and sandbox, in a scratch course root (``--workdir``).

This process is the gradebook's only writer: a finished worker's result goes into the gradebook in one go,
then its result file is marked ``"recorded"``; a rerun on the same ``--workdir`` leaves recorded results of
unchanged submissions alone. See grader/README.md, "Autograde a class" and "No lost grades".
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from unittest import mock

import nbformat
from tqdm.auto import tqdm

from grader.course.release import REPO_ROOT, chapters, gradebook, nbgrader, nbgrader_env
from grader.trusted import staging
from grader.trusted.feedback import generate_feedback
from grader.trusted.report import (
    BatchResult,
    ExerciseResult,
    Outcome,
    StudentResult,
    format_table,
    safe_echo,
    write_csv,
)

__all__ = ["autograde", "BatchResult", "StudentResult", "ExerciseResult", "Outcome", "format_table", "write_csv",
           "STARTUP_GRACE"]

_MARKER = ".dlcourse-grading"
_NOT_SOURCE = {".ipynb_checkpoints", "__pycache__"}  # in solutions/<chapter>: not copied, not hashed
#: Seconds a worker gets beyond the notebooks' limits (interpreter, kernel start, the trusted replay).
STARTUP_GRACE = 120.0


# --------------------------------------------------------------------------- scratch course root


def _workdir(chapter: str, workdir: Path | None) -> Path:
    if workdir is None:
        ws = Path(tempfile.mkdtemp(prefix=f"dlcourse-autograde-{chapter}-"))
    else:
        ws = Path(workdir).resolve()
        if ws.exists() and any(ws.iterdir()) and not (ws / _MARKER).exists():
            raise ValueError(f"--workdir {ws} exists and is not an autograding directory; give an empty or new one")
        if ws.is_relative_to(REPO_ROOT):
            raise ValueError(f"--workdir {ws} is inside the repository; use a directory outside it")
        ws.mkdir(parents=True, exist_ok=True)
    os.chmod(ws, 0o700)  # hidden tests, the gradebook and every submission live here
    (ws / _MARKER).write_text("scratch course root made by `python -m grader autograde`\n")
    return ws


def _prepare_workdir(chapter: str, source_root: Path, ws: Path) -> None:
    src, dst = source_root / "solutions" / chapter, ws / "solutions" / chapter
    changed = not dst.exists() or _tree_digest(src) != _tree_digest(dst) or \
        not (ws / "gradebook.db").exists() or not (ws / "course" / chapter).is_dir()
    if changed:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    for sub in ("logs", "journal", "results", "records", "autograded", "submitted"):
        (ws / sub).mkdir(exist_ok=True)
    if changed:
        nbgrader("generate_assignment", chapter, "--force", root=ws, timeout=300)


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and not _NOT_SOURCE & set(p.relative_to(root).parts):
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _grade_cells(ws: Path, chapter: str) -> dict[str, list[tuple[str, float]]]:
    """notebook -> [(grade_id, points)] in notebook order, from the release."""
    cells: dict[str, list[tuple[str, float]]] = {}
    for path in sorted((ws / "course" / chapter).glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        cells[path.stem] = [(c.metadata.nbgrader["grade_id"], float(c.metadata.nbgrader.get("points", 0)))
                            for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    return cells


# --------------------------------------------------------------------------- the gradebook (one writer)


def _nbgrader_config(ws: Path) -> Any:
    from traitlets.config.loader import PyFileConfigLoader

    from grader.course.release import CONFIG
    with mock.patch.dict(os.environ, DLCOURSE_COURSE_ROOT=str(ws)):
        return PyFileConfigLoader(CONFIG.name, path=str(CONFIG.parent)).load_config()


def _db_url(ws: Path) -> str:
    return f"sqlite:///{ws / 'gradebook.db'}"


def _record(ws: Path, chapter: str, result: dict, config: Any) -> None:
    """Write one worker's result into the gradebook (this process is its only writer), then mark its result
    file ``"recorded"`` (atomically, after the gradebook commit: what a rerun leaves alone)."""
    import warnings

    from nbgrader.api import MissingEntry
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades
    from nbgrader.utils import parse_utc

    from grader.trusted.worker import write_atomically

    student = result["student"]
    stamp_path = ws / "submitted" / student / chapter / "timestamp.txt"
    timestamp = None
    with contextlib.suppress(ValueError, OSError):
        text = stamp_path.read_text(encoding="utf-8").strip()
        timestamp = parse_utc(text) if text else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy warnings on update_or_create_submission
        with gradebook(_db_url(ws)) as gb:
            gb.update_or_create_student(student)
            gb.update_or_create_submission(chapter, student, **({"timestamp": timestamp} if timestamp else {}))
        for name, entry in result.get("notebooks", {}).items():
            resources = {"nbgrader": {"notebook": name, "assignment": chapter, "student": student,
                                      "db_url": _db_url(ws)}}
            path = Path(entry.get("autograded", ""))
            if entry.get("submitted") and path.exists():
                nb = nbformat.read(str(path), as_version=4)
                SaveAutoGrades(config=config).preprocess(nb, resources)
                AssignLatePenalties(config=config).preprocess(nb, resources)
                continue
            with gradebook(_db_url(ws)) as gb, contextlib.suppress(MissingEntry):
                missing = gb.find_submission_notebook(name, chapter, student)
                for grade in missing.grades:
                    grade.auto_score = 0
                    grade.needs_manual_grade = False
                missing.late_submission_penalty = None  # not an earlier submission's penalty on a score of 0
                gb.db.commit()
    write_atomically(ws / "results" / f"{student}.json", json.dumps({**result, "recorded": True}, indent=1))


def _forget(ws: Path, chapter: str, students: list[str]) -> None:
    """Refused submissions: this chapter's earlier submission of each student leaves the gradebook (nbgrader's
    exports and the Formgrader would show its old score) and the work directory (no stale feedback, no
    result a rerun could take for this submission's)."""
    from nbgrader.api import MissingEntry

    with gradebook(_db_url(ws)) as gb:
        known = {s.id for s in gb.students}
        for student in (s for s in students if s in known):
            with contextlib.suppress(MissingEntry):
                gb.remove_submission(chapter, student)
    for student in students:
        for folder in ("submitted", "autograded", "feedback"):
            shutil.rmtree(ws / folder / student / chapter, ignore_errors=True)
        if (_read_result(ws, student) or {}).get("chapter") == chapter:
            (ws / "results" / f"{student}.json").unlink(missing_ok=True)


# --------------------------------------------------------------------------- workers


class _Slot:
    """One long-lived worker process (``python -m grader.trusted.worker``) and the job it is grading."""

    def __init__(self, ws: Path, index: int) -> None:
        self.ws = ws
        with open(ws / "logs" / f"worker-{index}.log", "ab") as log:  # inherited by the child
            self.proc = subprocess.Popen([sys.executable, "-m", "grader.trusted.worker"], cwd=ws, env=nbgrader_env(
                ws, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", TQDM_DISABLE="1",
                MPLBACKEND="Agg"),
                                         stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True)
        self.student: str | None = None
        self.salvage = ""
        self.started = self.deadline = self.wall = 0.0
        self.kernel_started = False

    def send(self, job: dict, wall: float) -> None:
        self.student, self.salvage = job["student"], job["salvage"]
        (self.ws / "results" / f"{self.student}.json").unlink(missing_ok=True)  # the job is done when it is back
        self.started = time.monotonic()
        # The wall-clock limit counts from the first kernel start (the worker's own start-up and
        # preparation are not the student's time), with STARTUP_GRACE seconds allowed for getting there.
        self.wall, self.kernel_started = wall, bool(self.salvage)
        self.deadline = self.started + wall + (0 if self.salvage else STARTUP_GRACE)
        self.proc.stdin.write(json.dumps(job).encode() + b"\n")  # one line: JSON escapes every line break
        self.proc.stdin.flush()

    def check_kernel_started(self, chapter: str) -> None:
        if not self.kernel_started and self.student is not None:
            folder = self.ws / "journal" / self.student / chapter
            if folder.is_dir() and any(folder.glob("*.jsonl")):
                self.kernel_started = True
                self.deadline = time.monotonic() + self.wall

    def finished(self) -> bool:
        """Has the worker written the job's result (its last step, whatever happened)?"""
        return self.student is not None and (self.ws / "results" / f"{self.student}.json").exists()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        from grader.trusted.execute import kill_process_tree

        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        kill_process_tree(self.proc.pid)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


def _world_readable(path: Path) -> bool:
    """Can any user list ``path`` (every ancestor searchable by others, the directory readable by others)?"""
    try:
        path = path.resolve()
        if not path.exists() or not path.stat().st_mode & 0o004:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in path.parents)
    except OSError:
        return False


def _read_result(ws: Path, student: str, digest: str | None = None) -> dict | None:
    """results/<student>.json, if it is of the submission with ``digest`` (None: whatever it is of)."""
    try:
        result = json.loads((ws / "results" / f"{student}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if digest is None or result.get("hash") == digest else None


# --------------------------------------------------------------------------- batch


def autograde(chapter: str, submissions: Path, *, source_root: Path = REPO_ROOT, timeout: int = 60,
              notebook_timeout: int = 600, workdir: Path | None = None, feedback: bool = False,
              csv_path: Path | None = None, wall_limit: float | None = None,
              echo: Callable[[str], None] = print, workers: int | None = None, regrade: bool = False,
              show_hidden: bool = False, limits: Any = None, progress: bool | None = None,
              nbgrader_config: Any = None, mathjax_url: str = "") -> BatchResult:
    """Autograde every submission in ``submissions`` (one folder per student); see grader/README.md.

    ``nbgrader_config`` (a traitlets ``Config``) is merged over grader/nbgrader_config.py when grades are
    recorded, e.g. a term's ``AssignLatePenalties.plugin_class`` and ``LatePenalty`` settings.
    """
    from grader.trusted import sandbox

    echo = safe_echo(echo)
    source_root = Path(source_root).resolve()
    submissions = Path(submissions).resolve()
    if chapter not in chapters(source_root):
        raise ValueError(f"no chapter {chapter!r} under {source_root / 'solutions'} "
                         f"(known: {', '.join(chapters(source_root)) or 'none'})")
    if not submissions.is_dir():
        raise ValueError(f"{submissions} is not a directory of submissions (one folder per student)")
    found = staging.find_submissions(submissions, chapter)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = max(1, workers or cores)
    limits = limits or sandbox.Limits()
    limits.cell_timeout, limits.notebook_timeout = timeout, notebook_timeout
    ws = _workdir(chapter, workdir)
    with open(ws / ".lock", "w") as lock:  # held for the whole batch
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ValueError(f"another `python -m grader autograde` is running on {ws}") from None
        _prepare_workdir(chapter, source_root, ws)
        config = _nbgrader_config(ws)
        if nbgrader_config is not None:
            config.merge(nbgrader_config)
        batch = _batch(chapter, found, ws, source_root, limits, workers, wall_limit, regrade, config,
                       echo, progress)
    if feedback:
        generate_feedback(ws, chapter, show_hidden=show_hidden, mathjax_url=mathjax_url, echo=echo)
    echo(format_table(batch))
    if csv_path is not None:
        echo(f"CSV written to {write_csv(batch, Path(csv_path))}")
    if feedback:
        echo(f"Feedback HTML: {ws / 'feedback'}/<student>/{chapter}/" + (" (hidden tests included)"
                                                                          if show_hidden else ""))
    return batch


def _batch(chapter: str, found: list[staging.Submission], ws: Path, source_root: Path,
           limits: Any, workers: int, wall_limit: float | None, regrade: bool, config: Any,
           echo: Callable[[str], None], progress: bool | None) -> BatchResult:
    from grader.trusted import sandbox
    from grader.trusted.worker import keep_records

    caps = sandbox.probe()
    sandbox.sweep_all()  # what killed graders left behind (their uids are free again)
    cells = _grade_cells(ws, chapter)
    notebooks = list(cells)
    subs = {sub.student: sub for sub in found}
    digests = {s: sub.digest for s, sub in subs.items()}
    refused: dict[str, str] = {s: sub.refused for s, sub in subs.items() if sub.refused}
    status: dict[str, Outcome] = dict.fromkeys(refused, Outcome.REFUSED)
    results: dict[str, dict] = {}
    todo = []
    for s in (s for s in subs if s not in refused):
        res = _read_result(ws, s, digests[s]) if not regrade else None
        if res is not None and res.get("recorded"):
            status[s], results[s] = Outcome.SKIPPED, res
        elif res is not None and res.get("status") == "ok" and (ws / "submitted" / s / chapter).is_dir():
            _record(ws, chapter, res, config)  # finished before a crash of the grader: record, do not regrade
            status[s], results[s] = Outcome.RECOVERED, res
        else:
            todo.append(s)
    graded_before = len(subs) - len(todo) - len(refused)
    echo(f"Autograding {chapter}: {len(subs)} submission(s) ({len(todo)} to grade"
         + (f", {graded_before} already graded" if graded_before else "")
         + (f", {len(refused)} refused" if refused else "")
         + f"), {sum(len(v) for v in cells.values())} graded cells, {workers} worker(s); work directory {ws}")
    for s, why in refused.items():
        echo(f"  refused {s}: {why}")
    echo(sandbox.describe(caps, limits))
    if not caps.mountns:
        exposed = sorted({str(p) for p in (source_root / "solutions", REPO_ROOT / "solutions") if _world_readable(p)})
        if exposed:
            echo(f"WARNING: without mount namespaces the kernels can read {', '.join(exposed)} (readable by every "
                 "user): make it private (chmod 700) or grade from a copy in a private directory")
    library = sandbox.build_library(sandbox.base_dir() / f"lib-{os.getpid()}-{int(time.time() * 1000)}",
                                    strip=sandbox.chapter_references(ws / "solutions" / chapter)) \
        if caps.drop_uid or caps.mountns else None
    wall = wall_limit if wall_limit is not None else limits.notebook_timeout * max(len(notebooks), 1) + STARTUP_GRACE

    def job(student: str, salvage: str = "") -> dict:
        return {"student": student, "chapter": chapter, "workdir": str(ws), "notebooks": notebooks,
                "limits": asdict(limits), "caps": caps.to_dict(), "library": str(library) if library else None,
                "salvage": salvage, "submission_hash": digests[student]}

    def stage(student: str) -> bool:
        """Copy the submission into submitted/; False (and refused) when it changed into something refused."""
        try:
            digest = staging.stage(subs[student], ws / "submitted" / student / chapter)
        except OSError as exc:
            why = f"the submission changed while it was being copied ({exc.strerror or exc})"
        else:
            why = "" if digest == digests[student] else "the submission changed while it was being graded"
        for old in (ws / "journal" / student, ws / "records" / student):
            shutil.rmtree(old, ignore_errors=True)
        (ws / "results" / f"{student}.json").unlink(missing_ok=True)
        if why:
            status[student], refused[student] = Outcome.REFUSED, why + "; grade it again"
        return not why

    pending: list[tuple[str, str]] = [(s, "") for s in todo]
    slots: list[_Slot] = []
    bar = tqdm(total=len(todo), desc="grading", unit="submission", file=sys.stderr,
               disable=None if progress is None else not progress) if progress is not False and todo else None
    say = safe_echo(bar.write) if bar is not None else echo
    done = 0

    def finish(slot: _Slot, outcome: str | None) -> None:
        """outcome None: the worker reported the job done; else why it did not."""
        nonlocal done
        student, salvage, started = slot.student, slot.salvage, slot.started
        slot.student = None
        assert student is not None
        res = _read_result(ws, student, digests[student])
        kind = (res or {}).get("status")
        if kind == "ok" and (outcome is None or salvage):
            _record(ws, chapter, res, config)
            status[student] = Outcome.GRADED
        elif kind == "error":
            # the grader itself failed (not the submission): nothing is recorded, a rerun tries again
            status[student] = Outcome.ERROR
        elif not salvage:
            # score what finished from the journal and the records, without executing anything again
            pending.insert(0, (student, outcome or (res or {}).get("notes", ["the grader failed"])[0]))
            return
        else:
            res = {"student": student, "status": "error", "hash": digests[student], "notebooks": {},
                   "notes": [salvage] + ([outcome] if outcome else []) + list((res or {}).get("notes", []))}
            status[student] = Outcome.ERROR
        results[student] = res
        done += 1
        first = (res.get("notes") or [""])[0]
        say(f"  [{done}/{len(todo)}] {student}: {status[student]} in {time.monotonic() - started:.1f} s"
            + (f" — {first}" if first else ""))
        if bar is not None:
            bar.update(1)

    def stopped(slot: _Slot, why: str) -> None:
        for name in notebooks:  # what its kernels recorded, before a sweep removes it
            keep_records(ws, slot.student, chapter, name)
        finish(slot, why)

    try:
        slots = [_Slot(ws, k) for k in range(min(workers, len(todo)))]
        while pending or any(slot.student for slot in slots):
            for k, slot in enumerate(slots):
                while slot.student is None and pending:
                    student, salvage = pending.pop(0)
                    if not salvage and not stage(student):
                        done += 1
                        say(f"  [{done}/{len(todo)}] {student}: refused — {refused[student]}")
                        continue
                    if not slot.alive():
                        slots[k] = slot = _Slot(ws, k)
                    slot.send(job(student, salvage), 300.0 + STARTUP_GRACE if salvage else wall)
            time.sleep(0.05)
            for k, slot in enumerate(slots):
                if slot.student is None:
                    continue
                slot.check_kernel_started(chapter)
                if slot.finished():
                    finish(slot, None)
                elif not slot.alive():
                    stopped(slot, f"the grader's worker for this submission died (exit {slot.proc.poll()}; see "
                                  f"logs/worker-{k}.log in the work directory)")
                elif time.monotonic() >= slot.deadline:
                    slot.kill()
                    stopped(slot, f"the autograder stopped this submission at its wall-clock limit ({wall:g} s)")
    finally:
        if bar is not None:
            bar.close()
        for slot in slots:  # interrupted (Ctrl-C) or done: nothing half-written reaches the gradebook
            if slot.student is not None:
                slot.kill()
            else:
                slot.close()
        if library is not None:
            shutil.rmtree(library, ignore_errors=True)
        sandbox.sweep_all()
    _forget(ws, chapter, list(refused))
    return BatchResult(chapter, ws, _results(ws, chapter, list(subs), results, status, refused, cells))


def _results(ws: Path, chapter: str, students: list[str], results: dict[str, dict], status: dict[str, Outcome],
             refused: dict[str, str], cells: dict[str, list[tuple[str, float]]]) -> list[StudentResult]:
    """Scores from the gradebook (read after every write), reasons from the workers' results."""
    from nbgrader.api import MissingEntry

    out = []
    multi = len(cells) > 1
    with gradebook(_db_url(ws)) as gb:
        for student in students:
            res = results.get(student, {})
            outcome = status.get(student, Outcome.ERROR)
            notes = [f"refused: {refused[student]}"] if outcome is Outcome.REFUSED else list(res.get("notes", []))
            sr = StudentResult(student, notes=notes, status=outcome)
            out.append(sr)
            for notebook, grade_cells in cells.items():
                rows = {r["grade_id"]: r for r in res.get("notebooks", {}).get(notebook, {}).get("cells", [])}
                for grade_id, points in grade_cells:
                    score, max_score = None, points
                    if outcome.recorded:
                        with contextlib.suppress(MissingEntry):
                            grade = gb.find_grade(grade_id, notebook, chapter, student)
                            score, max_score = grade.score, grade.max_score
                    row = rows.get(grade_id, {})
                    reason = row.get("reason", "")
                    if outcome is Outcome.ERROR:
                        reason = (sr.notes or ["the grader failed on this submission"])[0]
                    elif outcome is Outcome.REFUSED:
                        reason = f"not graded: {refused[student]}"
                    score = float(score or 0.0)
                    if score >= max_score:
                        reason = ""
                    elif not reason:
                        reason = "needs manual grading" if row.get("manual") else "partial credit"
                    name = f"{notebook}:{grade_id}" if multi else grade_id
                    sr.exercises.append(ExerciseResult(name, score, float(max_score), reason))
    return out
