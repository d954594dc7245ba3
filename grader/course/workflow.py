"""The instructor's term: release → fetch → submit → collect → autograde → feedback → export on nbgrader's exchange.

The commands, the term directory TERM (nbgrader's course root of one term and the autograder's work directory)
and its layout: docs/instructor-workflow.md and grader/README.md. Invariant: ``grade-collected`` grades exactly
the collected submissions that are new or changed since TERM/workflow/<chapter>.json recorded them (``--all``
regrades everyone), always recording them afresh, so nbgrader's ``AssignLatePenalties`` applies the term's
late-penalty rule (:class:`grader.plugins.LatePenalty`) to each of them with its current due date and extensions.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nbgrader.api import MissingEntry
from nbgrader.utils import parse_utc

from grader.course.exchange import inbound
from grader.course.release import NbgraderError, chapters, gradebook, nbgrader
from grader.course.term import COLLECTED, Term, TermError, atomic_write, check_chapter, duedates, locked, show_utc
from grader.trusted.autograde import autograde

__all__ = ["release_to_exchange", "collect", "collected_submissions", "grade_collected", "recorded_scores",
           "release_feedback", "export_grades", "term_status", "CollectReport", "GradeRun", "LateInfo", "Collected",
           "format_late_table"]


def _locked_step(func):
    """A step that writes to the term: the chapter is checked, then ``func`` runs holding the term's lock."""
    @functools.wraps(func)
    def step(term: Term, chapter: str, **options):
        check_chapter(term, chapter)
        with locked(term):
            return func(term, chapter, **options)
    return step


def _read_stamp(folder: Path) -> str:
    """nbgrader's timestamp.txt in ``folder`` ('' when absent; a link is never followed)."""
    path = folder / "timestamp.txt"
    return path.read_text(encoding="utf-8").strip() if path.is_file() and not path.is_symlink() else ""


# --------------------------------------------------------------------------- release and collect


def release_to_exchange(term: Term, chapter: str, *, force: bool = False) -> Path:
    """``nbgrader release_assignment``: the student version ``<source_root>/course/<chapter>`` into the exchange.

    Without ``force`` nbgrader refuses to release over an earlier release ("Destination already exists").
    """
    check_chapter(term, chapter)
    release_dir = term.source_root / "course"
    if not any((release_dir / chapter).glob("*.ipynb")):
        raise TermError(f"{release_dir / chapter} holds no notebooks; run `python -m grader release {chapter}` first")
    nbgrader("release_assignment", chapter, f"--CourseDirectory.release_directory={release_dir}",
             f"--Exchange.root={term.exchange}", *(["--force"] if force else []), root=term.root, timeout=300)
    return term.exchange / term.course_id / "outbound" / chapter


@dataclass(frozen=True)
class Collected:
    path: Path
    timestamp: str              # timestamp.txt as nbgrader wrote it ('' when absent)
    digest: str                 # of the notebooks and timestamp: what changes when the student resubmits

    @property
    def utc(self) -> datetime | None:
        return parse_utc(self.timestamp) if self.timestamp else None


def collected_submissions(term: Term, chapter: str) -> dict[str, Collected]:
    """What ``collect`` put into TERM/collected/<student>/<chapter>/, by student (links are never followed)."""
    found = {}
    for path in sorted((term.root / COLLECTED).glob(f"[!.]*/{chapter}")):
        if path.is_symlink() or path.parent.is_symlink() or not path.is_dir():
            continue
        stamp = _read_stamp(path)
        h = hashlib.sha256(stamp.encode())
        for nb in sorted(path.glob("*.ipynb")):     # a link is hashed as a link (the autograder refuses it)
            h.update(nb.name.encode() + b"\0" + (b"link:" + os.readlink(nb).encode() if nb.is_symlink()
                                                  else nb.read_bytes()))
        found[path.parent.name] = Collected(path, stamp, h.hexdigest())
    return found


@dataclass
class CollectReport:
    chapter: str
    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    waiting: dict[str, int] = field(default_factory=dict)     # student -> newer submissions left in the exchange
    late: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.chapter}: {len(self.new)} new, {len(self.updated)} updated, "
                f"{len(self.unchanged)} unchanged submission(s) collected")
        if self.late:
            text += f"; late: {', '.join(self.late)}"
        if self.waiting:
            text += ("; newer submissions in the exchange (collect with --update to take them): "
                     + ", ".join(f"{s} ({n})" for s, n in sorted(self.waiting.items())))
        return text


@_locked_step
def collect(term: Term, chapter: str, *, update: bool = False, before_duedate: bool = False) -> CollectReport:
    """``nbgrader collect`` into TERM/collected/<student>/<chapter>/ (the latest submission of each student)."""
    before = collected_submissions(term, chapter)
    options = [flag for flag, on in (("--update", update), ("--before-duedate", before_duedate)) if on]
    nbgrader("collect", chapter, f"--CourseDirectory.submitted_directory={COLLECTED}",
             f"--Exchange.root={term.exchange}", *options, root=term.root, timeout=600)
    report = CollectReport(chapter)
    due = duedates(term).get(chapter)
    waiting = inbound(term.exchange, chapter, term.course_id)
    for student, sub in collected_submissions(term, chapter).items():
        if student not in before:
            report.new.append(student)
        elif before[student].digest != sub.digest:
            report.updated.append(student)
        else:
            report.unchanged.append(student)
        if sub.utc is None:
            continue
        newer = sum(who == student and stamp > sub.utc for stamp, who in waiting)
        if newer:
            report.waiting[student] = newer
        if due is not None and sub.utc > due:
            report.late.append(student)
    return report


# --------------------------------------------------------------------------- grading


@dataclass
class LateInfo:
    seconds_late: float
    raw_score: float
    penalty: float
    max_score: float

    @property
    def score(self) -> float:
        return max(0.0, self.raw_score - self.penalty)


@dataclass
class GradeRun:
    chapter: str
    graded: list[str]
    results: dict[str, LateInfo]
    skipped: list[str]           # collected, unchanged since last graded


def _load_state(term: Term, chapter: str) -> dict[str, dict]:
    """What TERM/workflow/<chapter>.json records: per student, the submission graded last."""
    path = term.state_file(chapter)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@_locked_step
def grade_collected(term: Term, chapter: str, *, regrade_all: bool = False, students: Sequence[str] | None = None,
                    workers: int | None = None, timeout: int = 60, notebook_timeout: int = 600,
                    feedback: bool = True, mathjax_url: str = "", echo: Callable[[str], None] = print) -> GradeRun:
    """Autograde the collected submissions that are new or changed since they were last graded.

    They are staged as SUBMISSIONS/<student>/<notebook>.ipynb + timestamp.txt and graded in this process
    by :func:`grader.trusted.autograde.autograde` on the work directory TERM (always graded afresh, so that
    its late penalty follows the term's rule now), with its feedback and a CSV in TERM/exports/; then
    TERM/workflow/<chapter>.json records what was graded.
    """
    collected = collected_submissions(term, chapter)
    missing = sorted(set(students or ()) - set(collected))
    if missing:
        raise TermError(f"nothing collected for {', '.join(missing)} in {chapter}")
    if not collected:
        raise TermError(f"nothing collected for {chapter}: run `python -m grader collect {chapter}` first")
    state = _load_state(term, chapter)
    regrade = bool(regrade_all or students)
    wanted = [s for s in sorted(collected) if not students or s in students]
    todo = [s for s in wanted if regrade or state.get(s, {}).get("digest") != collected[s].digest]
    run = GradeRun(chapter, todo, {}, skipped=[s for s in wanted if s not in todo])
    if not todo:
        echo(f"{chapter}: every collected submission is graded already ({len(wanted)}); --all regrades them")
        return run
    csv_path = term.root / "exports" / f"{chapter}-autograde-{datetime.now():%Y%m%d-%H%M%S}.csv"
    with tempfile.TemporaryDirectory(prefix=f"dlcourse-grade-{chapter}-") as tmp:
        for student in todo:
            _stage_collected(collected[student], Path(tmp) / student)
        echo(f"{chapter}: grading {len(todo)} submission(s): {', '.join(todo)}"
             + (f" (unchanged, not regraded: {len(run.skipped)})" if run.skipped else ""))
        try:
            batch = autograde(chapter, Path(tmp), source_root=term.source_root, workdir=term.root, csv_path=csv_path,
                              feedback=feedback, workers=workers, timeout=timeout, notebook_timeout=notebook_timeout,
                              regrade=True, nbgrader_config=term.nbgrader_overrides(), mathjax_url=mathjax_url,
                              echo=echo)
        except (ValueError, NbgraderError) as exc:
            raise TermError(f"autograding failed, nothing recorded as graded: {exc}") from None
    recorded = {s.student for s in batch.students if s.status.recorded}
    run.graded = [s for s in todo if s in recorded]
    run.results = recorded_scores(term, chapter, run.graded)
    graded_at = datetime.now().isoformat(timespec="seconds")
    for student in run.graded:
        sub = collected[student]
        secret = sub.path / "submission_secret.txt"
        state[student] = {"digest": sub.digest, "timestamp": sub.timestamp, "graded_at": graded_at,
                          "secret": secret.read_text(encoding="utf-8") if secret.is_file() else ""}
    term.state_file(chapter).parent.mkdir(exist_ok=True)
    atomic_write(term.state_file(chapter), json.dumps(state, indent=1, sort_keys=True) + "\n")
    echo(format_late_table(run))
    return run


def _stage_collected(sub: Collected, dest: Path) -> None:
    """The collected notebooks and timestamp as SUBMISSIONS/<student>/; links are copied as links, so
    that the autograder refuses them (it never follows one) instead of this copy reading their target."""
    dest.mkdir()
    for nb in sorted(sub.path.glob("*.ipynb")):
        shutil.copy2(nb, dest / nb.name, follow_symlinks=False)
    if sub.timestamp:
        (dest / "timestamp.txt").write_text(sub.timestamp, encoding="utf-8")


def recorded_scores(term: Term, chapter: str, students: Sequence[str]) -> dict[str, LateInfo]:
    """Each student's lateness, raw score and late penalty as the gradebook holds them.

    The penalty is nbgrader's ``AssignLatePenalties``, run when autograde recorded the notebook: seconds late =
    timestamp − (due date + extension), the plugin's penalty per notebook, clipped to [0, the notebook's score]
    (a notebook missing from the submission scores 0 and carries no penalty).
    """
    out: dict[str, LateInfo] = {}
    with gradebook(term.db_url, term.course_id) as gb:
        for student in students:
            try:
                sub = gb.find_submission(chapter, student)
            except MissingEntry:
                continue
            out[student] = LateInfo(float(sub.total_seconds_late), float(sub.score),
                                    float(sub.late_submission_penalty or 0.0), float(sub.max_score))
    return out


def format_late_table(run: GradeRun) -> str:
    if not run.results:
        return f"{run.chapter}: no grades recorded"
    width = max(len("student"), *(len(s) for s in run.results))
    lines = [f"{run.chapter}: grades recorded in the gradebook",
             f"{'student'.ljust(width)}  {'raw':>7}  {'penalty':>7}  {'score':>7}  late"]
    for s, info in sorted(run.results.items()):
        late = "no" if info.seconds_late <= 0 else f"yes, {_duration(info.seconds_late)} after the due date"
        lines.append(f"{s.ljust(width)}  {info.raw_score:>7g}  {info.penalty:>7g}  "
                     f"{info.score:>4g}/{info.max_score:<3g} {late}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    for below, size, unit, digits in ((60, 1, "s", 0), (3600, 60, "min", 0), (86400, 3600, "h", 1)):
        if seconds < below:
            return f"{seconds / size:.{digits}f} {unit}"
    return f"{seconds / 86400:.1f} days"


# --------------------------------------------------------------------------- feedback and export


@_locked_step
def release_feedback(term: Term, chapter: str) -> list[str]:
    """``nbgrader release_feedback`` for every student whose feedback belongs to the submission graded last.

    nbgrader finds a student's feedback by a hash of the submission's secret: the secret of the graded
    submission (recorded by ``grade-collected``) goes next to the feedback HTML, with its timestamp.
    """
    state = _load_state(term, chapter)
    ready, held = [], []
    for fb in sorted((term.root / "feedback").glob(f"*/{chapter}")):
        student, info = fb.parent.name, state.get(fb.parent.name)
        stamp = _read_stamp(fb)
        if not any(fb.glob("*.html")):
            continue
        if info is None or not info.get("secret"):
            held.append((student, "not graded from the exchange (no submission secret)"))
        elif _other_time(stamp, info["timestamp"]):
            held.append((student, "the feedback is for another submission than the one graded last; "
                                  "run grade-collected again"))
        else:
            if not stamp:
                (fb / "timestamp.txt").write_text(info["timestamp"], encoding="utf-8")
            (fb / "submission_secret.txt").write_text(info["secret"], encoding="utf-8")
            ready.append(student)
    for student, why in held:
        print(f"  {student}: feedback not released: {why}")
    if not ready:
        print(f"{chapter}: no feedback to release (grade with `python -m grader grade-collected {chapter}` first)")
        return []
    exclude = [f"--CourseDirectory.student_id_exclude={','.join(s for s, _ in held)}"] if held else []
    nbgrader("release_feedback", chapter, f"--Exchange.root={term.exchange}", *exclude, root=term.root, timeout=600)
    print(f"{chapter}: feedback released for {len(ready)} student(s): {', '.join(ready)} "
         f"(students: nbgrader fetch_feedback {chapter} --course {term.course_id})")
    return ready


def _other_time(a: str, b: str) -> bool:
    """Whether two timestamp.txt texts are both readable and name different times."""
    try:
        return bool(a and b) and parse_utc(a) != parse_utc(b)
    except (ValueError, OverflowError):
        return False


def export_grades(term: Term, to: str | Path, chapter_names: Sequence[str] | None = None) -> Path:
    """``nbgrader export`` with :class:`grader.plugins.GradesCsvExport`: one row per student and chapter."""
    to = Path(to).resolve()
    to.parent.mkdir(parents=True, exist_ok=True)
    args = ["export", f"--to={to}", "--exporter=grader.plugins.GradesCsvExport"]
    for name in chapter_names or ():
        check_chapter(term, name)
        args.append(f"--ExportPlugin.assignment={name}")
    nbgrader(*args, root=term.root, timeout=300)
    return to


def term_status(term: Term) -> str:
    """Settings, and per chapter: due date, released, waiting in the exchange, collected, graded."""
    dues = duedates(term)
    released = {p.name for p in (term.exchange / term.course_id / "outbound").glob("*") if p.is_dir()}
    lines = [f"term {term.root}", f"  exchange     {term.exchange}", f"  source       {term.source_root}",
             f"  late penalty {term.late_penalty}", f"  time zone    {term.timezone}", "",
             f"  {'chapter':<16} {'due':<40} {'released':<9} {'inbound':>7} {'collected':>9} {'graded':>6}"]
    for name in chapters(term.source_root):
        waiting = {who for _, who in inbound(term.exchange, name, term.course_id)}
        lines.append(f"  {name:<16} {show_utc(dues.get(name), term.timezone):<40} "
                     f"{'yes' if name in released else 'no':<9} {len(waiting):>7} "
                     f"{len(collected_submissions(term, name)):>9} {len(_load_state(term, name)):>6}")
    return "\n".join(lines)
