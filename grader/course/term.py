"""A term directory: the nbgrader course root of one term, its settings, due dates and late-penalty rule.

``python -m grader term init TERM --exchange DIR`` makes TERM the batch autograder's work directory (a
copy of the solutions, the release, the gradebook with every chapter) and writes ``dlcourse-term.json``
(this module's settings: exchange, source root, late-penalty policy, time zone) and ``nbgrader_config.py``
(the same for nbgrader commands run in TERM). Due dates are nbgrader's, kept in UTC in the gradebook and
read and shown in the term's time zone. The workflow steps on a term are in grader/course/workflow.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from dateutil import parser as dparser
from dateutil.tz import UTC, gettz
from nbgrader.utils import parse_utc
from traitlets.config import Config

from grader.course.exchange import COURSE_ID
from grader.course.release import REPO_ROOT, NbgraderError, gradebook, require_chapters
from grader.trusted.autograde import autograde

__all__ = ["Term", "TermError", "TERM_FILE", "COLLECTED", "STATE_DIR", "init_term", "load_term", "parse_late_penalty",
           "parse_duedate", "set_duedate", "locked", "check_chapter", "duedates", "show_utc", "atomic_write"]

TERM_FILE = "dlcourse-term.json"
COLLECTED = "collected"
STATE_DIR = "workflow"
_PENALTY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%(?:\s*/\s*day)?\s*$")
_CONFIG_HEAD = '''"""This term's nbgrader settings, written by `python -m grader term init` from dlcourse-term.json.

nbgrader loads this file (the course root's nbgrader_config.py) after grader/nbgrader_config.py.
"""

c = get_config()  # noqa: F821
'''


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

    def state_file(self, chapter: str) -> Path:
        """TERM/workflow/<chapter>.json: which submission of each student was graded last."""
        return self.root / STATE_DIR / f"{chapter}.json"

    def save(self) -> None:
        """dlcourse-term.json (these settings) and nbgrader_config.py (the same for nbgrader commands run in TERM)."""
        settings = {k: str(v) for k, v in asdict(self).items() if k != "root"}
        atomic_write(self.root / TERM_FILE, json.dumps(settings, indent=1, sort_keys=True) + "\n")
        lines = [f"c.Exchange.root = {str(self.exchange)!r}"] + [
            f"c.{section}.{key} = {value!r}"
            for section, values in self.nbgrader_overrides().items() for key, value in values.items()]
        atomic_write(self.root / "nbgrader_config.py", _CONFIG_HEAD + "\n".join(lines) + "\n")

    def nbgrader_overrides(self):
        """This term's late-penalty rule as nbgrader configuration (what nbgrader_config.py says, for autograde)."""
        method, percent = parse_late_penalty(self.late_penalty)
        return Config({"AssignLatePenalties": {"plugin_class": "grader.plugins.LatePenalty"},
                       "LatePenalty": {"penalty_method": method, "percent_per_day": percent}})


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


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(term: Term):
    """One workflow command at a time on a term (collect, grade-collected and exchange-feedback write to it).

    The lock is the open file's: closing it (also when the process dies) releases it.
    """
    with open(term.root / ".workflow.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TermError(f"another workflow command is running on {term.root}; try again when it has "
                            "finished") from None
        yield


def load_term(root: str | Path | None) -> Term:
    """The term directory ``root`` (``--term``) or, when absent, the one in the environment variable DLCOURSE_TERM."""
    value = root or os.environ.get("DLCOURSE_TERM")
    if not value:
        raise TermError("no term directory: pass --term TERM or set DLCOURSE_TERM "
                        "(create one with `python -m grader term init TERM --exchange DIR`)")
    root = Path(value).expanduser().resolve()
    path = root / TERM_FILE
    if not path.is_file():
        raise TermError(f"{root} is not a term directory (no {TERM_FILE}); "
                        f"create it with `python -m grader term init {root} --exchange DIR`")
    settings = json.loads(path.read_text(encoding="utf-8"))
    return Term(root, Path(settings.pop("exchange")), Path(settings.pop("source_root")), **settings)


def init_term(root: str | Path, exchange: str | Path, *, source_root: str | Path = REPO_ROOT,
              chapter_names: Sequence[str] | None = None, late_penalty: str = "none", timezone: str = "UTC") -> Term:
    """Create (or update the settings of) a term directory; every chapter gets its assignment in the gradebook."""
    root = Path(root).expanduser().resolve()
    source_root = Path(source_root).resolve()
    exchange = Path(exchange).expanduser().resolve()
    parse_late_penalty(late_penalty)
    if gettz(timezone) is None:
        raise TermError(f"unknown time zone {timezone!r} (use a name such as UTC or Asia/Tokyo)")
    if root == REPO_ROOT or REPO_ROOT in root.parents:
        raise TermError(f"the term directory {root} is inside the repository; use a directory outside it")
    names = require_chapters(chapter_names, source_root, TermError)
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
            print(f"  {name}: assignment ready in {root / 'gradebook.db'}")
    exchange.mkdir(parents=True, exist_ok=True)
    term = Term(root, exchange, source_root, late_penalty, timezone)
    term.save()
    for folder in (COLLECTED, STATE_DIR, "exports"):
        (root / folder).mkdir(exist_ok=True)
    print(f"{'Updated' if existing else 'Created'} term {root} (exchange {exchange}, late penalty {late_penalty}, "
         f"time zone {timezone})")
    return term


# --------------------------------------------------------------------------- due dates


def parse_duedate(text: str, timezone: str = "UTC") -> datetime:
    """A due date as nbgrader stores it (naive UTC); text without a time zone is read in ``timezone``.

    Accepts '2025-06-01 23:59', '2025-06-01T23:59:00+09:00' and nbgrader's '2025-06-01 23:59:00 Asia/Tokyo'.
    """
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
    check_chapter(term, chapter)
    due = None if when is None else (parse_utc(when) if isinstance(when, datetime) else
                                     parse_duedate(when, term.timezone))
    with gradebook(term.db_url, term.course_id) as gb:
        gb.update_or_create_assignment(chapter, duedate=due)
    return due


def check_chapter(term: Term, chapter: str) -> None:
    require_chapters([chapter], term.source_root, TermError)


def show_utc(value: datetime | None, timezone: str) -> str:
    if value is None:
        return "none"
    local = value.replace(tzinfo=UTC).astimezone(gettz(timezone))
    text = local.strftime("%Y-%m-%d %H:%M:%S %Z")
    return text if timezone == "UTC" else f"{text} ({value:%Y-%m-%d %H:%M:%S} UTC)"


def duedates(term: Term) -> dict[str, datetime | None]:
    with gradebook(term.db_url, term.course_id) as gb:
        return {a.name: a.duedate for a in gb.assignments}
