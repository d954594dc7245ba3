"""Batch autograding: every submission of one chapter through nbgrader, one bad one never stops the rest.

    python -m grader autograde CHAPTER SUBMISSIONS_DIR [--timeout 60] [--notebook-timeout 600]
                               [--csv grades.csv] [--feedback] [--workdir DIR]

SUBMISSIONS_DIR/<student_id>/<notebook>.ipynb (or nbgrader's <student_id>/<CHAPTER>/<notebook>.ipynb).

Everything happens in a scratch course root (``--workdir``, default a new temporary directory that
is kept and printed): a copy of solutions/<CHAPTER>, the release and a fresh gradebook made by
``nbgrader generate_assignment``, the submissions under submitted/, then autograded/, feedback/,
logs/ and journal/. The repository is never written to.

Per submission:
1. ``nbgrader autograde CHAPTER --student S`` runs in its own process session with a wall-clock
   limit (per-notebook limit × notebooks + a margin). Inside, grader.execute.RobustExecute applies
   the per-cell limit (``--timeout``, interrupt), the per-notebook limit, and survives a kernel
   that dies or ignores the interrupt, so the cells that ran keep their points.
2. If that process must be killed (or fails), its whole process tree is killed and a second
   ``nbgrader autograde`` rebuilds the notebook from RobustExecute's journal (``replay``): the
   cells that had finished are scored as they ran, the rest score zero with the reason.
Then ``nbgrader generate_feedback`` (with ``--feedback``), a score table, and the CSV
(student, exercise, score, max_score, reason).
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.execute import NOT_RUN, kill_process_tree
from grader.release import (
    REPO_ROOT,
    NbgraderError,
    chapters,
    ensure_scripts_on_path,
    nbgrader,
    nbgrader_command,
    nbgrader_env,
)

__all__ = ["autograde", "grade_submission", "BatchResult", "StudentResult", "ExerciseResult", "format_table",
           "write_csv"]

_MARKER = ".dlcourse-grading"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_REASON_CHARS = 600
#: Seconds nbgrader may take to sanitise a submission and start its kernel before the wall-clock limit starts.
STARTUP_GRACE = 120.0


@dataclass
class ExerciseResult:
    exercise: str           # grade id (prefixed "notebook:" when the chapter has several notebooks)
    score: float
    max_score: float
    reason: str = ""        # why points were lost ('' for full marks)


@dataclass
class StudentResult:
    student: str
    exercises: list[ExerciseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)      # submission-level events (kernel died, killed, ...)
    feedback: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(e.score for e in self.exercises)

    @property
    def max_score(self) -> float:
        return sum(e.max_score for e in self.exercises)


@dataclass
class BatchResult:
    chapter: str
    workdir: Path
    students: list[StudentResult]
    csv_path: Path | None = None

    def by_student(self) -> dict[str, StudentResult]:
        return {s.student: s for s in self.students}


# --------------------------------------------------------------------------- scratch course root


def _prepare_workdir(chapter: str, source_root: Path, workdir: Path | None) -> Path:
    if workdir is None:
        ws = Path(tempfile.mkdtemp(prefix=f"dlcourse-autograde-{chapter}-"))
    else:
        ws = Path(workdir).resolve()
        if ws.exists() and any(ws.iterdir()) and not (ws / _MARKER).exists():
            raise ValueError(f"--workdir {ws} exists and is not an autograding directory; give an empty or new one")
        try:
            ws.relative_to(REPO_ROOT)
            inside = True
        except ValueError:
            inside = False
        if inside:
            raise ValueError(f"--workdir {ws} is inside the repository; use a directory outside it")
        ws.mkdir(parents=True, exist_ok=True)
    (ws / _MARKER).write_text("scratch course root made by `python -m grader autograde`\n")
    src = source_root / "solutions" / chapter
    dst = ws / "solutions" / chapter
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    for sub in ("logs", "journal"):
        (ws / sub).mkdir(exist_ok=True)
    nbgrader("generate_assignment", chapter, "--force", root=ws, timeout=300)
    return ws


def _grade_cells(ws: Path, chapter: str) -> dict[str, list[tuple[str, float]]]:
    """notebook -> [(grade_id, points)] in notebook order, from the release."""
    cells: dict[str, list[tuple[str, float]]] = {}
    for path in sorted((ws / "course" / chapter).glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        cells[path.stem] = [(c.metadata.nbgrader["grade_id"], float(c.metadata.nbgrader.get("points", 0)))
                            for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    return cells


def _collect_submission(src: Path, chapter: str) -> list[Path]:
    nested = src / chapter
    base = nested if nested.is_dir() else src
    return sorted(p for p in base.glob("*.ipynb") if not p.name.startswith("."))


# --------------------------------------------------------------------------- one submission


def grade_submission(ws: Path, chapter: str, student: str, *, n_notebooks: int, timeout: int = 60,
                     notebook_timeout: int = 600, wall_limit: float | None = None) -> list[str]:
    """Autograde one student's submission in the scratch root ``ws``; returns submission-level notes."""
    notes: list[str] = []
    wall = wall_limit if wall_limit is not None else notebook_timeout * max(n_notebooks, 1) + 60
    args = ["autograde", chapter, f"--student={student}", "--force", f"--Execute.timeout={timeout}",
            f"--RobustExecute.notebook_timeout={notebook_timeout}", f"--RobustExecute.journal_dir={ws / 'journal'}"]
    env = nbgrader_env(ws, TQDM_DISABLE="1")
    log_path = ws / "logs" / f"{student}.log"
    journal = ws / "journal" / student / chapter
    if journal.exists():
        shutil.rmtree(journal)
    killed = False
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(nbgrader_command(*args), cwd=ws, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        # The wall-clock limit counts from the first kernel start (nbgrader's own start-up is not the
        # student's time), with STARTUP_GRACE seconds allowed for getting there.
        launched, kernel_up = time.monotonic(), None
        while (rc := proc.poll()) is None:
            now = time.monotonic()
            if kernel_up is None and journal.is_dir() and any(journal.glob("*.jsonl")):
                kernel_up = now
            limit_at = kernel_up + wall if kernel_up is not None else launched + wall + STARTUP_GRACE
            if now >= limit_at:
                kill_process_tree(proc.pid)
                proc.wait()
                rc, killed = None, True
                break
            time.sleep(0.1)
    log_text = log_path.read_text(encoding="utf-8", errors="replace")
    notes += _incidents(ws, chapter, student)
    complete = _autograded_complete(ws, chapter, student)
    if killed or rc != 0 or not complete:
        if killed:
            reason = f"the autograder stopped this submission at its wall-clock limit ({wall:g} s)"
        else:
            reason = f"nbgrader autograde failed (exit {rc}): {_log_error(log_text)}"
        notes.append(reason)
        if not any(journal.glob("*.jsonl")):
            notes.append(f"nothing was executed (see logs/{student}.log in the work directory)")
            return notes
        replay = args + ["--RobustExecute.replay=True", f"--RobustExecute.replay_reason={reason}"]
        with open(ws / "logs" / f"{student}.replay.log", "w", encoding="utf-8") as log:
            try:
                rc2 = subprocess.run(nbgrader_command(*replay), cwd=ws, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, timeout=300).returncode
            except subprocess.TimeoutExpired:
                rc2 = None
        if rc2 != 0:
            notes.append("the submission could not be scored from what ran (see logs/"
                         f"{student}.replay.log in the work directory); every exercise scores 0")
    return notes


def _log_error(log: str) -> str:
    """The most telling error line of an nbgrader log: the last exception line, else the last ERROR line."""
    lines = [_ANSI.sub("", ln).strip() for ln in log.splitlines()]
    exceptions = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b:?", ln)]
    errors = [ln for ln in lines if "ERROR" in ln and "Please see" not in ln and "There was an error" not in ln]
    line = (exceptions or errors or ["see the log"])[-1]
    return line if len(line) <= 300 else line[:300] + " …"


def _autograded_complete(ws: Path, chapter: str, student: str) -> bool:
    submitted = {p.name for p in (ws / "submitted" / student / chapter).glob("*.ipynb")}
    autograded = {p.name for p in (ws / "autograded" / student / chapter).glob("*.ipynb")}
    return bool(submitted) and submitted <= autograded


def _incidents(ws: Path, chapter: str, student: str) -> list[str]:
    from grader.execute import read_journal
    notes = []
    for path in sorted((ws / "journal" / student / chapter).glob("*.jsonl")):
        for event in read_journal(str(path)):
            if event.get("event") == "incident":
                where = event.get("cell") or f"cell {event['index']}"
                notes.append(f"{path.stem}, {where}: {event['kind']}: {event['message']}")
    return notes


def _reason(cell: nbformat.NotebookNode) -> str:
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    # The last error is the most telling (a timeout appends CellTimeoutError after KeyboardInterrupt).
    for out in errors[-1:] + [o for o in cell.get("outputs", []) if o.get("output_type") == "stream"]:
        if out.get("output_type") == "error":
            ename, evalue = out.get("ename", ""), out.get("evalue", "")
            if ename == "CellTimeoutError" and not evalue:
                evalue = " ".join(_ANSI.sub("", t) for t in out.get("traceback", [])).split(": ", 1)[-1]
            if ename == NOT_RUN:
                return _one_line(evalue)
            return _one_line(f"{ename}: {evalue}" if evalue.strip() else ename)
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            text = str(out.get("text", ""))
            return _one_line(f"the cell wrote to stderr, which nbgrader scores as a failure: {text}")
    return ""


def _cell_errors(nb: nbformat.NotebookNode, notebook: str, notes: list[str], limit: int = 3) -> list[str]:
    """Errors in cells that are not graded themselves (often why a later test failed), not yet in ``notes``."""
    found = []
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("grade"):
            continue
        label = f"{notebook}, cell {index}"
        if any(note.startswith((label + ":", label + " (")) for note in notes):
            continue
        reason = _reason(cell)
        if reason and not reason.startswith("not run:"):
            grade_id = f" ('{meta['grade_id']}')" if meta.get("grade_id") else ""
            found.append(f"{notebook}, cell {index}{grade_id}: {reason}")
    return found[:limit] + ([f"… and {len(found) - limit} more cells with errors"] if len(found) > limit else [])


def _one_line(text: str) -> str:
    text = " | ".join(line.strip() for line in _ANSI.sub("", text).splitlines() if line.strip())
    return text if len(text) <= _REASON_CHARS else text[:_REASON_CHARS] + " …"


def _results(ws: Path, chapter: str, students: dict[str, list[str]],
             cells: dict[str, list[tuple[str, float]]]) -> list[StudentResult]:
    """Scores from the gradebook (one reader, after every writer finished), reasons from the notebooks."""
    from nbgrader.api import Gradebook, MissingEntry

    ensure_scripts_on_path()
    results = []
    multi = len(cells) > 1
    with Gradebook(f"sqlite:///{ws / 'gradebook.db'}", "dlcourse") as gb:
        for student, notes in students.items():
            result = StudentResult(student, notes=list(notes))
            results.append(result)
            for notebook, grade_cells in cells.items():
                path = ws / "autograded" / student / chapter / f"{notebook}.ipynb"
                outputs = {}
                if path.exists():
                    nb = nbformat.read(str(path), as_version=4)
                    outputs = {c.metadata.nbgrader["grade_id"]: c for c in nb.cells
                               if c.get("metadata", {}).get("nbgrader", {}).get("grade")}
                    result.notes += _cell_errors(nb, notebook, notes)
                submitted = (ws / "submitted" / student / chapter / f"{notebook}.ipynb").exists()
                for grade_id, points in grade_cells:
                    score = None
                    try:
                        grade = gb.find_grade(grade_id, notebook, chapter, student)
                        score, points = grade.score, grade.max_score
                    except MissingEntry:
                        pass
                    if grade_id in outputs:
                        reason = _reason(outputs[grade_id])
                    elif not submitted:
                        reason = f"{notebook}.ipynb was not submitted"
                    else:
                        main = [n for n in notes if n.startswith(("nbgrader autograde failed", "the autograder"))]
                        reason = (main or notes or ["not graded"])[0]
                    score = float(score or 0.0)
                    if score >= points:
                        reason = ""
                    elif not reason:
                        reason = "not graded (needs manual grading)" if grade_id not in outputs else "partial credit"
                    name = f"{notebook}:{grade_id}" if multi else grade_id
                    result.exercises.append(ExerciseResult(name, score, float(points), reason))
    return results


# --------------------------------------------------------------------------- batch


def autograde(chapter: str, submissions: Path, *, source_root: Path = REPO_ROOT, timeout: int = 60,
              notebook_timeout: int = 600, workdir: Path | None = None, feedback: bool = False,
              csv_path: Path | None = None, wall_limit: float | None = None,
              echo: Callable[[str], None] = print) -> BatchResult:
    """Autograde every submission in ``submissions`` (one folder per student); see the module docstring."""
    source_root = Path(source_root).resolve()
    submissions = Path(submissions).resolve()
    if chapter not in chapters(source_root):
        raise ValueError(f"no chapter {chapter!r} under {source_root / 'solutions'} "
                         f"(known: {', '.join(chapters(source_root)) or 'none'})")
    if not submissions.is_dir():
        raise ValueError(f"{submissions} is not a directory of submissions (one folder per student)")
    students = sorted(p.name for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    ws = _prepare_workdir(chapter, source_root, workdir)
    cells = _grade_cells(ws, chapter)
    echo(f"Autograding {chapter}: {len(students)} submission(s), {sum(len(v) for v in cells.values())} graded "
         f"cells; work directory {ws}")
    notes_by_student: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    for k, student in enumerate(students, 1):
        start = time.monotonic()
        dest = ws / "submitted" / student / chapter
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        found = _collect_submission(submissions / student, chapter)
        for nb_path in found:
            shutil.copy2(nb_path, dest / nb_path.name)
        stamp = submissions / student / "timestamp.txt"
        if stamp.exists():
            shutil.copy2(stamp, dest / "timestamp.txt")
        if not found:
            notes = [f"no notebook found in {submissions / student}"]
        else:
            notes = grade_submission(ws, chapter, student, n_notebooks=len(found), timeout=timeout,
                                     notebook_timeout=notebook_timeout, wall_limit=wall_limit)
        notes_by_student[student] = notes
        seconds[student] = time.monotonic() - start
        echo(f"  [{k}/{len(students)}] {student}: graded in {seconds[student]:.1f} s"
             + (f" — {notes[0]}" if notes else ""))
    results = _results(ws, chapter, notes_by_student, cells)
    for res in results:
        res.seconds = seconds[res.student]
    batch = BatchResult(chapter, ws, results)
    if feedback:
        try:
            nbgrader("generate_feedback", chapter, "--force", root=ws, timeout=600)
        except (NbgraderError, subprocess.TimeoutExpired) as exc:
            echo(f"generating feedback failed: {exc}")
        for res in results:
            res.feedback = sorted((ws / "feedback" / res.student / chapter).glob("*.html"))
    echo(format_table(batch))
    if csv_path is not None:
        batch.csv_path = write_csv(batch, Path(csv_path))
        echo(f"CSV written to {batch.csv_path}")
    if feedback:
        echo(f"Feedback HTML: {ws / 'feedback'}/<student>/{chapter}/")
    return batch


def format_table(batch: BatchResult) -> str:
    """Students × exercises with the total, then the reasons for every lost point."""
    if not batch.students:
        return "(no submissions)"
    names = [e.exercise for e in batch.students[0].exercises]
    width = max([len("student")] + [len(s.student) for s in batch.students])
    cols = [max(len(n), 7) for n in names]
    lines = ["  ".join(["student".ljust(width)] + [n.rjust(w) for n, w in zip(names, cols, strict=True)]
                       + ["total".rjust(9)])]
    lines.append("-" * len(lines[0]))
    for s in batch.students:
        cells = [f"{e.score:g}/{e.max_score:g}".rjust(w) for e, w in zip(s.exercises, cols, strict=True)]
        lines.append("  ".join([s.student.ljust(width)] + cells + [f"{s.score:g}/{s.max_score:g}".rjust(9)]))
    details = []
    for s in batch.students:
        for note in s.notes:
            details.append(f"  {s.student}: {note}")
        for e in s.exercises:
            if e.reason:
                details.append(f"  {s.student} / {e.exercise} ({e.score:g}/{e.max_score:g}): {e.reason}")
    if details:
        lines += ["", "Why points were lost:"] + details
    return "\n".join(lines)


def write_csv(batch: BatchResult, path: Path) -> Path:
    """One row per student and exercise (and a TOTAL row per student): student, exercise, score, max_score, reason."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "exercise", "score", "max_score", "reason"])
        for s in batch.students:
            for e in s.exercises:
                writer.writerow([s.student, e.exercise, f"{e.score:g}", f"{e.max_score:g}", e.reason])
            writer.writerow([s.student, "TOTAL", f"{s.score:g}", f"{s.max_score:g}", "; ".join(s.notes)])
    return path
