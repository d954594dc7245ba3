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

import argparse
import contextlib
import csv
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from grader.course.exchange import COURSE_ID, inbound, outbound
from grader.course.release import REPO_ROOT, NbgraderError, chapters, ensure_scripts_on_path, nbgrader
from grader.trusted.autograde import autograde
from grader.trusted.feedback import generate_feedback

__all__ = ["Term", "TermError", "init_term", "load_term", "set_duedate", "release_to_exchange", "collect",
           "collected_submissions", "grade_collected", "apply_late_penalties", "release_feedback", "export_grades",
           "CollectReport", "GradeRun", "LateInfo", "locked", "add_commands"]

TERM_FILE = "dlcourse-term.json"
COLLECTED = "collected"
STATE_DIR = "workflow"
_PENALTY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%(?:\s*/\s*day)?\s*$")


class TermError(ValueError):
    """A workflow step cannot run (not a term directory, unknown chapter, nothing collected, ...)."""


# --------------------------------------------------------------------------- the term directory


@dataclass
class Term:
    root: Path
    exchange: Path
    source_root: Path = REPO_ROOT
    late_penalty: str = "none"             # "none" | "zero" | "<p>%" (per started day)
    timezone: str = "UTC"                  # for due dates typed without a time zone, and for display
    course_id: str = COURSE_ID

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root / 'gradebook.db'}"

    def settings(self) -> dict:
        data = asdict(self)
        data.pop("root")
        return {k: str(v) for k, v in data.items()}

    def save(self) -> None:
        _atomic_write(self.root / TERM_FILE, json.dumps(self.settings(), indent=1, sort_keys=True) + "\n")
        _atomic_write(self.root / "nbgrader_config.py", self.nbgrader_config())

    def nbgrader_config(self) -> str:
        lines = [
            '"""This term\'s nbgrader settings, written by `python -m grader term init` from dlcourse-term.json.',
            "",
            "nbgrader loads this file (the course root's nbgrader_config.py) after grader/nbgrader_config.py.",
            '"""',
            "",
            "c = get_config()  # noqa: F821",
            f"c.Exchange.root = {str(self.exchange)!r}",
            'c.AssignLatePenalties.plugin_class = "grader.plugins.LatePenalty"',
        ]
        method, percent = parse_late_penalty(self.late_penalty)
        lines.append(f"c.LatePenalty.penalty_method = {method!r}")
        lines.append(f"c.LatePenalty.percent_per_day = {percent!r}")
        return "\n".join(lines) + "\n"

    def nbgrader_overrides(self):
        """This term's late-penalty rule as nbgrader configuration (what nbgrader_config.py says, for autograde)."""
        from traitlets.config import Config

        method, percent = parse_late_penalty(self.late_penalty)
        c = Config()
        c.AssignLatePenalties.plugin_class = "grader.plugins.LatePenalty"
        c.LatePenalty.penalty_method = method
        c.LatePenalty.percent_per_day = percent
        return c

    def late_plugin(self):
        """The term's :class:`grader.plugins.LatePenalty`."""
        from grader.plugins import LatePenalty

        method, percent = parse_late_penalty(self.late_penalty)
        return LatePenalty(penalty_method=method, percent_per_day=percent)

    def chapters(self) -> list[str]:
        return chapters(self.source_root)


def parse_late_penalty(text: str) -> tuple[str, float]:
    """'none' → ('none', 0), 'zero' → ('zero', 0), '10%' or '10%/day' → ('none', 10.0)."""
    value = str(text).strip().lower()
    if value in ("none", "zero"):
        return value, 0.0
    m = _PENALTY.match(value)
    if m and 0 < float(m.group(1)) <= 100:
        return "none", float(m.group(1))
    raise TermError(f"late penalty {text!r}: expected none (flag late submissions only), zero (a late submission "
                    "scores 0) or a percentage per started day late such as 10%")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(term: Term):
    """One workflow command at a time on a term (collect, grade-collected and exchange-feedback write to it)."""
    with open(term.root / ".workflow.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TermError(f"another workflow command is running on {term.root}; try again when it has "
                            "finished") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def term_root(value: str | Path | None) -> Path:
    """``--term`` or, when absent, the environment variable DLCOURSE_TERM."""
    value = value or os.environ.get("DLCOURSE_TERM")
    if not value:
        raise TermError("no term directory: pass --term TERM or set DLCOURSE_TERM "
                        "(create one with `python -m grader term init TERM --exchange DIR`)")
    return Path(value).expanduser().resolve()


def load_term(root: str | Path | None) -> Term:
    root = term_root(root)
    path = root / TERM_FILE
    if not path.is_file():
        raise TermError(f"{root} is not a term directory (no {TERM_FILE}); "
                        f"create it with `python -m grader term init {root} --exchange DIR`")
    data = json.loads(path.read_text(encoding="utf-8"))
    return Term(root=root, exchange=Path(data["exchange"]), source_root=Path(data["source_root"]),
                late_penalty=data.get("late_penalty", "none"), timezone=data.get("timezone", "UTC"),
                course_id=data.get("course_id", COURSE_ID))


def init_term(root: str | Path, exchange: str | Path, *, source_root: str | Path = REPO_ROOT,
              chapter_names: Sequence[str] | None = None, late_penalty: str = "none", timezone: str = "UTC",
              echo: Callable[[str], None] = print) -> Term:
    """Create (or update the settings of) a term directory; every chapter gets its assignment in the gradebook."""
    from dateutil.tz import gettz

    root = Path(root).expanduser().resolve()
    source_root = Path(source_root).resolve()
    exchange = Path(exchange).expanduser().resolve()
    parse_late_penalty(late_penalty)
    if gettz(timezone) is None:
        raise TermError(f"unknown time zone {timezone!r} (use a name such as UTC or Asia/Tokyo)")
    if root == REPO_ROOT or REPO_ROOT in root.parents:
        raise TermError(f"the term directory {root} is inside the repository; use a directory outside it")
    known = chapters(source_root)
    names = list(chapter_names) if chapter_names else known
    for name in names:
        if name not in known:
            raise TermError(f"no chapter {name!r} under {source_root / 'solutions'} (known: {', '.join(known)})")
    existing = (root / TERM_FILE).is_file()
    with tempfile.TemporaryDirectory(prefix="dlcourse-term-") as empty:
        for name in names:
            # The batch autograder makes the directory its own work directory (copy of the solutions,
            # release, gradebook with the chapter's assignment); with no submissions that is all it does.
            try:
                autograde(name, Path(empty), source_root=source_root, workdir=root, echo=lambda _: None,
                          progress=False)
            except (ValueError, NbgraderError) as exc:
                raise TermError(f"preparing {name} in {root} failed: {exc}") from None
            echo(f"  {name}: assignment ready in {root / 'gradebook.db'}")
    exchange.mkdir(parents=True, exist_ok=True)
    term = Term(root, exchange, source_root, late_penalty, timezone)
    term.save()
    (root / COLLECTED).mkdir(exist_ok=True)
    (root / STATE_DIR).mkdir(exist_ok=True)
    (root / "exports").mkdir(exist_ok=True)
    echo(f"{'Updated' if existing else 'Created'} term {root} (exchange {exchange}, late penalty {late_penalty}, "
         f"time zone {timezone})")
    return term


# --------------------------------------------------------------------------- due dates


def parse_duedate(text: str, timezone: str = "UTC") -> datetime:
    """A due date as nbgrader stores it (naive UTC); text without a time zone is read in ``timezone``.

    Accepts '2025-06-01 23:59', '2025-06-01T23:59:00+09:00' and nbgrader's '2025-06-01 23:59:00 Asia/Tokyo'.
    """
    from dateutil import parser as dparser
    from dateutil.tz import gettz
    from nbgrader.utils import parse_utc

    parts = text.split()
    try:
        if len(parts) == 3 and parts[2][:1].isalpha() and gettz(parts[2]) is not None:
            return parse_utc(text)                      # nbgrader's own format with a named zone
        value = dparser.parse(text)
    except (ValueError, OverflowError):
        raise TermError(f"cannot read the due date {text!r}; write e.g. '2025-06-01 23:59' "
                        "or '2025-06-01 23:59:00 Asia/Tokyo'") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=gettz(timezone))
    return parse_utc(value)


def set_duedate(term: Term, chapter: str, when: str | datetime | None) -> datetime | None:
    """Set (or with None clear) the chapter's due date in the term's gradebook; returns it in naive UTC."""
    from nbgrader.api import Gradebook
    from nbgrader.utils import parse_utc

    _check_chapter(term, chapter)
    due = None if when is None else (parse_utc(when) if isinstance(when, datetime) else
                                     parse_duedate(when, term.timezone))
    ensure_scripts_on_path()
    with Gradebook(term.db_url, term.course_id) as gb:
        assignment = gb.update_or_create_assignment(chapter)
        assignment.duedate = due
        gb.db.commit()
    return due


def _check_chapter(term: Term, chapter: str) -> None:
    if chapter not in term.chapters():
        raise TermError(f"no chapter {chapter!r} under {term.source_root / 'solutions'} "
                        f"(known: {', '.join(term.chapters())})")


def _show_utc(value: datetime | None, timezone: str) -> str:
    if value is None:
        return "none"
    from dateutil.tz import UTC, gettz

    local = value.replace(tzinfo=UTC).astimezone(gettz(timezone))
    text = local.strftime("%Y-%m-%d %H:%M:%S %Z")
    return text if timezone == "UTC" else f"{text} ({value:%Y-%m-%d %H:%M:%S} UTC)"


# --------------------------------------------------------------------------- release and collect


def release_to_exchange(term: Term, chapter: str, *, force: bool = False) -> Path:
    """``nbgrader release_assignment``: the student version ``<source_root>/course/<chapter>`` into the exchange."""
    _check_chapter(term, chapter)
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
    _check_chapter(term, chapter)
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
    due = _duedates(term).get(chapter)
    for student, sub in after.items():
        newer = [s for s in inbound(term.exchange, chapter, term.course_id)
                 if s.student == student and sub.utc is not None and s.timestamp > sub.utc]
        if newer:
            report.waiting[student] = len(newer)
        if due is not None and sub.utc is not None and sub.utc > due:
            report.late.append(student)
    return report


def _duedates(term: Term) -> dict[str, datetime | None]:
    from nbgrader.api import Gradebook

    ensure_scripts_on_path()
    with Gradebook(term.db_url, term.course_id) as gb:
        return {a.name: a.duedate for a in gb.assignments}


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
    _atomic_write(_state_path(term, chapter), json.dumps(state, indent=1, sort_keys=True) + "\n")


def grade_collected(term: Term, chapter: str, *, regrade_all: bool = False, students: Sequence[str] | None = None,
                    workers: int | None = None, timeout: int = 60, notebook_timeout: int = 600,
                    feedback: bool = True, mathjax_url: str = "", echo: Callable[[str], None] = print) -> GradeRun:
    """Autograde the collected submissions that are new or changed since they were last graded.

    They are staged as SUBMISSIONS/<student>/<notebook>.ipynb + timestamp.txt and graded in this process
    by :func:`grader.trusted.autograde.autograde` on the work directory TERM, with the term's late-penalty
    rule, its feedback and a CSV in TERM/exports/; then :func:`apply_late_penalties` checks the gradebook,
    and TERM/workflow/<chapter>.json records what was graded.
    """
    _check_chapter(term, chapter)
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
    _check_chapter(term, chapter)
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
        _check_chapter(term, name)
        args.append(f"--ExportPlugin.assignment={name}")
    nbgrader(*args, root=term.root, timeout=300)
    return to


def term_status(term: Term) -> str:
    """Settings, and per chapter: due date, released, waiting in the exchange, collected, graded."""
    dues = _duedates(term)
    released = set(outbound(term.exchange, term.course_id))
    lines = [f"term {term.root}", f"  exchange     {term.exchange}", f"  source       {term.source_root}",
             f"  late penalty {term.late_penalty}", f"  time zone    {term.timezone}", ""]
    head = f"  {'chapter':<16} {'due':<40} {'released':<9} {'inbound':>7} {'collected':>9} {'graded':>6}"
    lines.append(head)
    for name in term.chapters():
        waiting = {s.student for s in inbound(term.exchange, name, term.course_id)}
        lines.append(f"  {name:<16} {_show_utc(dues.get(name), term.timezone):<40} "
                     f"{'yes' if name in released else 'no':<9} {len(waiting):>7} "
                     f"{len(collected_submissions(term, name)):>9} {len(_load_state(term, name)):>6}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def _term_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--term", help="term directory (default: $DLCOURSE_TERM)")


def _run(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapper(args: argparse.Namespace) -> int:
        from grader.course.roster import RosterError

        try:
            return func(args)
        except (TermError, RosterError, NbgraderError) as exc:
            print(f"{args.command} failed: {exc}", file=sys.stderr)
            return 1
    return wrapper


def _cmd_term(args: argparse.Namespace) -> int:
    if args.action == "init":
        init_term(args.dir, args.exchange, source_root=Path(args.course_root), chapter_names=args.chapters or None,
                  late_penalty=args.late_penalty, timezone=args.timezone)
        return 0
    term = load_term(args.term)
    if args.action == "show":
        print(term_status(term))
    elif args.action == "duedate":
        due = set_duedate(term, args.chapter, None if args.when.lower() == "none" else args.when)
        print(f"{args.chapter}: due {_show_utc(due, term.timezone)}")
    elif args.action == "nbgrader":
        from grader.course.release import nbgrader_command, nbgrader_env

        rest = [a for a in args.rest if a != "--"]
        return subprocess.call(nbgrader_command(*rest), cwd=term.root, env=nbgrader_env(term.root))
    return 0


def _cmd_roster(args: argparse.Namespace) -> int:
    from grader.course.roster import import_roster, list_students

    term = load_term(args.term)
    if args.action == "import":
        report = import_roster(args.file, term.db_url, term.course_id)
        print(f"roster {args.file}: {report.summary()}")
    else:
        rows = list_students(term.db_url, term.course_id)
        writer = csv.writer(sys.stdout)
        writer.writerow(["student_id", "first_name", "last_name", "email"])
        for r in rows:
            writer.writerow([r.student_id, r.first_name or "", r.last_name or "", r.email or ""])
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    term = load_term(args.term)
    path = release_to_exchange(term, args.chapter, force=args.force)
    print(f"{args.chapter} released to {path} (students: nbgrader fetch_assignment {args.chapter} "
          f"--course {term.course_id})")
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    term = load_term(args.term)
    print(collect(term, args.chapter, update=args.update, before_duedate=args.before_duedate).summary())
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    term = load_term(args.term)
    grade_collected(term, args.chapter, regrade_all=args.all, students=args.student or None, workers=args.workers,
                    timeout=args.timeout, notebook_timeout=args.notebook_timeout, feedback=not args.no_feedback,
                    mathjax_url=args.mathjax_url)
    return 0


def _cmd_feedback(args: argparse.Namespace) -> int:
    release_feedback(load_term(args.term), args.chapter)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    term = load_term(args.term)
    path = export_grades(term, args.to or term.root / "exports" / "grades.csv", args.chapter or None)
    print(f"grades exported to {path}")
    return 0


def add_commands(sub) -> None:
    """Register the workflow's subcommands on ``python -m grader``'s subparsers."""
    p = sub.add_parser("term", help="a term directory: init, show, duedate, nbgrader (see docs/instructor-workflow.md)")
    acts = p.add_subparsers(dest="action", required=True)
    q = acts.add_parser("init", help="create a term directory (gradebook, settings) outside the repository")
    q.add_argument("dir", help="the term directory")
    q.add_argument("--exchange", required=True, help="nbgrader's exchange directory (shared by every user)")
    q.add_argument("--late-penalty", default="none",
                   help="none (flag late submissions only; default), zero, or a percentage per started day, e.g. 10%%")
    q.add_argument("--timezone", default="UTC", help="time zone for due dates typed without one (default UTC)")
    q.add_argument("--course-root", default=str(REPO_ROOT), help="where solutions/ and course/ are (default: repo)")
    q.add_argument("chapters", nargs="*", help="chapters (default: all under solutions/)")
    q = acts.add_parser("show", help="settings and, per chapter, due date and counts")
    _term_arg(q)
    q = acts.add_parser("duedate", help="set a chapter's due date ('none' clears it)")
    q.add_argument("chapter")
    q.add_argument("when", help="e.g. '2025-06-01 23:59' (term time zone) or '2025-06-01 23:59:00 Asia/Tokyo'")
    _term_arg(q)
    q = acts.add_parser("nbgrader", help="any nbgrader command on the term (course root = TERM)")
    _term_arg(q)
    q.add_argument("rest", nargs=argparse.REMAINDER, help="nbgrader arguments, e.g. db student list")
    p.set_defaults(func=_run(_cmd_term))

    p = sub.add_parser("roster", help="import a roster CSV (student_id, first_name, last_name, email) or list it")
    acts = p.add_subparsers(dest="action", required=True)
    q = acts.add_parser("import", help="add or update the students of FILE.csv in the term's gradebook")
    q.add_argument("file")
    _term_arg(q)
    q = acts.add_parser("list", help="the gradebook's students as CSV")
    _term_arg(q)
    p.set_defaults(func=_run(_cmd_roster))

    p = sub.add_parser("exchange-release", help="nbgrader release_assignment: course/<chapter> into the exchange")
    p.add_argument("chapter")
    p.add_argument("--force", action="store_true", help="release again over an earlier release")
    _term_arg(p)
    p.set_defaults(func=_run(_cmd_release))

    p = sub.add_parser("collect", help="nbgrader collect: the latest submissions into TERM/collected/")
    p.add_argument("chapter")
    p.add_argument("--update", action="store_true", help="replace collected submissions by newer ones")
    p.add_argument("--before-duedate", action="store_true", help="the latest submission before the due date")
    _term_arg(p)
    p.set_defaults(func=_run(_cmd_collect))

    p = sub.add_parser("grade-collected", help="autograde new/changed collected submissions, apply late penalties")
    p.add_argument("chapter")
    p.add_argument("--all", action="store_true", help="regrade every collected submission")
    p.add_argument("--student", action="append", help="grade only this student (repeatable; always regrades)")
    p.add_argument("--workers", type=int, help="submissions graded in parallel (default: the number of cores)")
    p.add_argument("--timeout", type=int, default=60, help="time limit per cell in seconds (default 60)")
    p.add_argument("--notebook-timeout", type=int, default=600, help="time limit per notebook (default 600)")
    p.add_argument("--no-feedback", action="store_true", help="do not generate feedback HTML")
    p.add_argument("--mathjax-url", default="", help="load MathJax from this URL in the feedback (default: a CDN)")
    _term_arg(p)
    p.set_defaults(func=_run(_cmd_grade))

    p = sub.add_parser("exchange-feedback", help="nbgrader release_feedback for the graded submissions")
    p.add_argument("chapter")
    _term_arg(p)
    p.set_defaults(func=_run(_cmd_feedback))

    p = sub.add_parser("export", help="nbgrader export: one CSV row per student and chapter")
    p.add_argument("--to", help="CSV file (default TERM/exports/grades.csv)")
    p.add_argument("--chapter", action="append", help="only this chapter (repeatable)")
    _term_arg(p)
    p.set_defaults(func=_run(_cmd_export))
