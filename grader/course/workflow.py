"""The instructor's term: release → fetch → submit → collect → autograde → feedback → export on nbgrader's exchange.

    python -m grader term init TERM --exchange DIR [--late-penalty none|zero|10%] [--timezone Asia/Tokyo]
    python -m grader roster import roster.csv            --term TERM (or DLCOURSE_TERM=TERM for every command)
    python -m grader term duedate 02_backprop "2025-06-01 23:59"
    python -m grader exchange-release 02_backprop         nbgrader release_assignment  (course/<chapter> → exchange)
        students: nbgrader fetch_assignment / nbgrader submit   (their JupyterLab's Assignments tab does the same)
    python -m grader collect 02_backprop [--update]       nbgrader collect             (exchange → TERM/collected/)
    python -m grader grade-collected 02_backprop          python -m grader autograde on what is new, late penalties
    python -m grader exchange-feedback 02_backprop        nbgrader release_feedback (students: nbgrader fetch_feedback)
    python -m grader export --to grades.csv               nbgrader export (one row per student and chapter)

The term directory and its settings are grader/course/term.py; the command line is grader/course/cli.py.

The **term directory** TERM (outside the repository) is the nbgrader course root of one term: it is
the batch autograder's work directory (``python -m grader autograde --workdir TERM``), so everything a
term produces sits in one place nbgrader and its Formgrader understand
(``DLCOURSE_COURSE_ROOT=TERM python -m grader lab``)::

    TERM/gradebook.db               roster, due dates, grades, late penalties (nbgrader's gradebook)
    TERM/dlcourse-term.json         this module's settings: exchange, source root, late-penalty policy, time zone
    TERM/nbgrader_config.py         the same for nbgrader commands run in TERM (loaded after grader/nbgrader_config.py)
    TERM/collected/<student>/<chapter>/   what ``collect`` took from the exchange (nbgrader's collected layout,
                                    with timestamp.txt and submission_secret.txt)
    TERM/solutions/ course/ submitted/ autograded/ feedback/ logs/ journal/   the autograder's (see grader/README.md)
    TERM/workflow/<chapter>.json    which submission of each student was graded (timestamp, digest)
    TERM/exports/                   one CSV per grading run (per exercise, with reasons)

Late submissions: the due date is the gradebook's (``term duedate`` or ``nbgrader db assignment add
--duedate``), the submission time is nbgrader's ``timestamp.txt``; nbgrader's ``AssignLatePenalties``
applies the term's policy (``none``: flagged only, nbgrader's default; ``zero``: nbgrader's; ``N%``:
:class:`grader.plugins.LatePenalty`, N % of the score per started day), and ``grade-collected``
re-applies it in the gradebook afterwards, so the result does not depend on the configuration the
autograder used (the feedback is regenerated when that changed a penalty).
Resubmissions: nbgrader keeps every submission in the exchange; ``collect --update`` replaces a
collected one by a newer one, and ``grade-collected`` grades exactly the students whose collected
submission is new or changed since it was last graded (``--all`` regrades everyone).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from grader.course.exchange import inbound, outbound
from grader.course.release import NbgraderError, ensure_scripts_on_path, nbgrader
from grader.course.term import (
    COLLECTED,
    STATE_DIR,
    TERM_FILE,
    Term,
    TermError,
    atomic_write,
    check_chapter,
    duedates,
    show_utc,
    init_term,
    load_term,
    locked,
    parse_duedate,
    parse_late_penalty,
    set_duedate,
    term_root,
)
from grader.trusted.autograde import autograde
from grader.trusted.feedback import generate_feedback

__all__ = ["Term", "TermError", "TERM_FILE", "init_term", "load_term", "term_root", "set_duedate", "parse_duedate",
           "parse_late_penalty", "locked", "release_to_exchange", "collect", "collected_submissions",
           "grade_collected", "apply_late_penalties", "release_feedback", "export_grades", "term_status",
           "CollectReport", "GradeRun", "LateInfo", "Collected", "format_late_table", "COLLECTED", "STATE_DIR"]


# --------------------------------------------------------------------------- release and collect


def release_to_exchange(term: Term, chapter: str, *, force: bool = False) -> Path:
    """``nbgrader release_assignment``: the student version ``<source_root>/course/<chapter>`` into the exchange."""
    check_chapter(term, chapter)
    release_dir = term.source_root / "course"
    if not any((release_dir / chapter).glob("*.ipynb")):
        raise TermError(f"{release_dir / chapter} holds no notebooks; run `python -m grader release {chapter}` first")
    args = ["release_assignment", chapter, f"--CourseDirectory.release_directory={release_dir}",
            f"--Exchange.root={term.exchange}"]
    target = term.exchange / term.course_id / "outbound" / chapter
    if force:
        args.append("--force")
    elif target.exists():
        raise TermError(f"{chapter} is already in the exchange; add --force to release it again "
                        "(students who fetched it keep their copy)")
    nbgrader(*args, root=term.root, timeout=300)
    return target


@dataclass(frozen=True)
class Collected:
    student: str
    path: Path
    timestamp: str              # timestamp.txt as nbgrader wrote it ('' when absent)
    digest: str                 # of the notebooks and timestamp: what changes when the student resubmits

    @property
    def utc(self) -> datetime | None:
        from nbgrader.utils import parse_utc

        return parse_utc(self.timestamp) if self.timestamp else None


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _real_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def collected_submissions(term: Term, chapter: str) -> dict[str, Collected]:
    """What ``collect`` put into TERM/collected/<student>/<chapter>/."""
    found = {}
    base = term.root / COLLECTED
    if not base.is_dir():
        return found
    for student_dir in sorted(p for p in base.iterdir() if _real_dir(p) and not p.name.startswith(".")):
        path = student_dir / chapter
        if not _real_dir(path):
            continue
        stamp_file = path / "timestamp.txt"
        stamp = stamp_file.read_text(encoding="utf-8").strip() if _real_file(stamp_file) else ""
        h = hashlib.sha256(stamp.encode())
        for nb in sorted(path.glob("*.ipynb")):     # a link is hashed as a link (the autograder refuses it)
            h.update(nb.name.encode() + b"\0" + (b"link:" + os.readlink(nb).encode() if nb.is_symlink()
                                                  else nb.read_bytes()))
        found[student_dir.name] = Collected(student_dir.name, path, stamp, h.hexdigest())
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


def collect(term: Term, chapter: str, *, update: bool = False, before_duedate: bool = False) -> CollectReport:
    """``nbgrader collect`` into TERM/collected/<student>/<chapter>/ (the latest submission of each student)."""
    check_chapter(term, chapter)
    with locked(term):
        return _collect(term, chapter, update=update, before_duedate=before_duedate)


def _collect(term: Term, chapter: str, *, update: bool, before_duedate: bool) -> CollectReport:
    before = collected_submissions(term, chapter)
    args = ["collect", chapter, f"--CourseDirectory.submitted_directory={COLLECTED}",
            f"--Exchange.root={term.exchange}"]
    if update:
        args.append("--update")
    if before_duedate:
        args.append("--before-duedate")
    nbgrader(*args, root=term.root, timeout=600)
    after = collected_submissions(term, chapter)
    report = CollectReport(chapter)
    for student, sub in after.items():
        if student not in before:
            report.new.append(student)
        elif before[student].digest != sub.digest:
            report.updated.append(student)
        else:
            report.unchanged.append(student)
    due = duedates(term).get(chapter)
    for student, sub in after.items():
        newer = [s for s in inbound(term.exchange, chapter, term.course_id)
                 if s.student == student and sub.utc is not None and s.timestamp > sub.utc]
        if newer:
            report.waiting[student] = len(newer)
        if due is not None and sub.utc is not None and sub.utc > due:
            report.late.append(student)
    return report



# --------------------------------------------------------------------------- grading


@dataclass
class LateInfo:
    student: str
    timestamp: datetime | None
    duedate: datetime | None
    seconds_late: float
    raw_score: float
    penalty: float
    max_score: float
    changed: bool = False        # the timestamp or a penalty in the gradebook was not what the rule gives

    @property
    def score(self) -> float:
        return max(0.0, self.raw_score - self.penalty)


@dataclass
class GradeRun:
    chapter: str
    graded: list[str]
    results: dict[str, LateInfo]
    csv_path: Path | None = None
    skipped: list[str] = field(default_factory=list)         # collected, unchanged since last graded
    seconds: float = 0.0


def _state_path(term: Term, chapter: str) -> Path:
    return term.root / STATE_DIR / f"{chapter}.json"


def _load_state(term: Term, chapter: str) -> dict[str, dict]:
    path = _state_path(term, chapter)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _save_state(term: Term, chapter: str, state: dict[str, dict]) -> None:
    _state_path(term, chapter).parent.mkdir(exist_ok=True)
    atomic_write(_state_path(term, chapter), json.dumps(state, indent=1, sort_keys=True) + "\n")


def grade_collected(term: Term, chapter: str, *, regrade_all: bool = False, students: Sequence[str] | None = None,
                    workers: int | None = None, timeout: int = 60, notebook_timeout: int = 600,
                    feedback: bool = True, mathjax_url: str = "", echo: Callable[[str], None] = print) -> GradeRun:
    """Autograde the collected submissions that are new or changed since they were last graded.

    They are staged as SUBMISSIONS/<student>/<notebook>.ipynb + timestamp.txt and graded in this process
    by :func:`grader.trusted.autograde.autograde` on the work directory TERM, with the term's late-penalty
    rule, its feedback and a CSV in TERM/exports/; then :func:`apply_late_penalties` checks the gradebook,
    and TERM/workflow/<chapter>.json records what was graded.
    """
    check_chapter(term, chapter)
    with locked(term):
        return _grade_collected(term, chapter, regrade_all=regrade_all, students=students, workers=workers,
                                timeout=timeout, notebook_timeout=notebook_timeout, feedback=feedback,
                                mathjax_url=mathjax_url, echo=echo)


def _grade_collected(term: Term, chapter: str, *, regrade_all: bool, students: Sequence[str] | None,
                     workers: int | None, timeout: int, notebook_timeout: int, feedback: bool,
                     mathjax_url: str, echo: Callable[[str], None]) -> GradeRun:
    start = time.monotonic()
    collected = collected_submissions(term, chapter)
    if students:
        missing = sorted(set(students) - set(collected))
        if missing:
            raise TermError(f"nothing collected for {', '.join(missing)} in {chapter}")
    state = _load_state(term, chapter)
    wanted = [s for s in sorted(collected) if not students or s in students]
    todo = [s for s in wanted if regrade_all or students or state.get(s, {}).get("digest") != collected[s].digest]
    run = GradeRun(chapter, todo, {}, skipped=[s for s in wanted if s not in todo])
    if not collected:
        raise TermError(f"nothing collected for {chapter}: run `python -m grader collect {chapter}` first")
    if not todo:
        echo(f"{chapter}: every collected submission is graded already ({len(wanted)}); --all regrades them")
        return run
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    (term.root / "exports").mkdir(exist_ok=True)
    csv_path = term.root / "exports" / f"{chapter}-autograde-{stamp}.csv"
    with tempfile.TemporaryDirectory(prefix=f"dlcourse-grade-{chapter}-") as tmp:
        stage = Path(tmp)
        for student in todo:
            _stage_collected(collected[student], stage / student)
        echo(f"{chapter}: grading {len(todo)} submission(s): {', '.join(todo)}"
             + (f" (unchanged, not regraded: {len(run.skipped)})" if run.skipped else ""))
        try:
            batch = autograde(chapter, stage, source_root=term.source_root, workdir=term.root, csv_path=csv_path,
                              feedback=feedback, workers=workers, timeout=timeout, notebook_timeout=notebook_timeout,
                              regrade=bool(regrade_all or students), nbgrader_config=term.nbgrader_overrides(),
                              mathjax_url=mathjax_url, echo=echo)
        except (ValueError, NbgraderError) as exc:
            raise TermError(f"autograding failed, nothing recorded as graded: {exc}") from None
    outcomes = {s.student: s.status for s in batch.students}
    run.graded = [s for s in todo if s in outcomes and outcomes[s].recorded]
    run.csv_path = csv_path
    run.results = apply_late_penalties(term, chapter, run.graded, collected)
    changed = [s for s, info in run.results.items() if info.changed]
    if changed and feedback:
        # The gradebook held other penalties than the term's rule (e.g. an extension granted since): the
        # feedback is generated again from the gradebook as it is now.
        echo(f"{chapter}: late penalties corrected after autograding ({', '.join(changed)}); regenerating feedback")
        generate_feedback(term.root, chapter, mathjax_url=mathjax_url, echo=echo)
    for student in run.graded:
        sub = collected[student]
        secret_file = sub.path / "submission_secret.txt"
        state[student] = {"digest": sub.digest, "timestamp": sub.timestamp,
                          "secret": secret_file.read_text(encoding="utf-8") if secret_file.is_file() else "",
                          "graded_at": datetime.now().isoformat(timespec="seconds")}
    _save_state(term, chapter, state)
    run.seconds = time.monotonic() - start
    echo(format_late_table(run, term.timezone))
    return run


def _stage_collected(sub: Collected, dest: Path) -> None:
    """The collected notebooks and timestamp as SUBMISSIONS/<student>/; links are copied as links, so
    that the autograder refuses them (it never follows one) instead of this copy reading their target."""
    dest.mkdir()
    for nb in sorted(sub.path.glob("*.ipynb")):
        shutil.copy2(nb, dest / nb.name, follow_symlinks=False)
    if sub.timestamp:
        (dest / "timestamp.txt").write_text(sub.timestamp, encoding="utf-8")


def apply_late_penalties(term: Term, chapter: str, students: Sequence[str],
                         collected: dict[str, Collected] | None = None) -> dict[str, LateInfo]:
    """Record each submission's timestamp and the term's late penalty in the gradebook, as nbgrader does.

    Same rule as nbgrader's ``AssignLatePenalties``: seconds late = timestamp − (due date + extension),
    the plugin's penalty per notebook, clipped to [0, the notebook's score]. Idempotent.
    """
    from nbgrader.api import Gradebook, MissingEntry

    collected = collected if collected is not None else collected_submissions(term, chapter)
    plugin = term.late_plugin()
    ensure_scripts_on_path()
    out: dict[str, LateInfo] = {}
    with Gradebook(term.db_url, term.course_id) as gb:
        for student in students:
            try:
                sub = gb.find_submission(chapter, student)
            except MissingEntry:
                continue
            changed = False
            stamp = collected[student].utc if student in collected else None
            if stamp is not None and sub.timestamp != stamp:
                sub.timestamp = stamp
                gb.db.commit()
                changed = True
            late = sub.total_seconds_late
            for nb in sub.notebooks:
                penalty = None
                if late > 0:
                    value = plugin.late_submission_penalty(student, nb.score, late)
                    if value is not None:
                        penalty = min(max(float(value), 0.0), float(nb.score))
                if abs((nb.late_submission_penalty or 0.0) - (penalty or 0.0)) > 1e-9:
                    changed = True
                nb.late_submission_penalty = penalty
            gb.db.commit()
            out[student] = LateInfo(student, sub.timestamp, sub.duedate, float(late), float(sub.score),
                                    float(sub.late_submission_penalty or 0.0), float(sub.max_score), changed)
    return out


def format_late_table(run: GradeRun, timezone: str = "UTC") -> str:
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
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# --------------------------------------------------------------------------- feedback and export


def release_feedback(term: Term, chapter: str, *, echo: Callable[[str], None] = print) -> list[str]:
    """``nbgrader release_feedback`` for every student whose feedback belongs to the submission graded last.

    nbgrader finds a student's feedback by a hash of the submission's secret: the secret of the graded
    submission (recorded by ``grade-collected``) goes next to the feedback HTML, with its timestamp.
    """
    check_chapter(term, chapter)
    with locked(term):
        return _release_feedback(term, chapter, echo=echo)


def _release_feedback(term: Term, chapter: str, *, echo: Callable[[str], None]) -> list[str]:
    state = _load_state(term, chapter)
    ready, held = [], []
    for fb in sorted((term.root / "feedback").glob(f"*/{chapter}")):
        student = fb.parent.name
        if not any(fb.glob("*.html")):
            continue
        info = state.get(student)
        stamp_file = fb / "timestamp.txt"
        stamp = stamp_file.read_text(encoding="utf-8").strip() if stamp_file.is_file() else ""
        if info is None or not info.get("secret"):
            held.append((student, "not graded from the exchange (no submission secret)"))
            continue
        if stamp and info["timestamp"] and _same_time(stamp, info["timestamp"]) is False:
            held.append((student, "the feedback is for another submission than the one graded last; "
                                  "run grade-collected again"))
            continue
        if not stamp:
            stamp_file.write_text(info["timestamp"], encoding="utf-8")
        (fb / "submission_secret.txt").write_text(info["secret"], encoding="utf-8")
        ready.append(student)
    for student, why in held:
        echo(f"  {student}: feedback not released: {why}")
    if not ready:
        echo(f"{chapter}: no feedback to release (grade with `python -m grader grade-collected {chapter}` first)")
        return []
    args = ["release_feedback", chapter, f"--Exchange.root={term.exchange}"]
    if held:
        args.append(f"--CourseDirectory.student_id_exclude={','.join(s for s, _ in held)}")
    nbgrader(*args, root=term.root, timeout=600)
    echo(f"{chapter}: feedback released for {len(ready)} student(s): {', '.join(ready)} "
         f"(students: nbgrader fetch_feedback {chapter} --course {term.course_id})")
    return ready


def _same_time(a: str, b: str) -> bool | None:
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(a) == parse_utc(b)
    except (ValueError, OverflowError):
        return None


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
    released = set(outbound(term.exchange, term.course_id))
    lines = [f"term {term.root}", f"  exchange     {term.exchange}", f"  source       {term.source_root}",
             f"  late penalty {term.late_penalty}", f"  time zone    {term.timezone}", ""]
    head = f"  {'chapter':<16} {'due':<40} {'released':<9} {'inbound':>7} {'collected':>9} {'graded':>6}"
    lines.append(head)
    for name in term.chapters():
        waiting = {s.student for s in inbound(term.exchange, name, term.course_id)}
        lines.append(f"  {name:<16} {show_utc(dues.get(name), term.timezone):<40} "
                     f"{'yes' if name in released else 'no':<9} {len(waiting):>7} "
                     f"{len(collected_submissions(term, name)):>9} {len(_load_state(term, name)):>6}")
    return "\n".join(lines)
