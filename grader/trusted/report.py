"""What a batch tells people: the outcome of each submission, the console table, the CSV — student text made inert.

Student ids, exception messages and notes come from student code or student folders. Before they reach
the instructor's terminal or spreadsheet, :func:`safe_text` escapes every control character (C0, DEL,
C1 — so no ESC sequence: no window title, no OSC 52 clipboard write, no terminal reset) and the Unicode
line separators and bidirectional overrides that reorder a line, and bytes of a file name that are not
UTF-8 (which could not even be printed); a line break inside a field becomes
" | ". The CSV also defuses spreadsheet formulas: a text field that starts with ``= + - @`` (or a tab or
carriage return) gets a leading apostrophe, as OWASP recommends.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

__all__ = ["Outcome", "ExerciseResult", "StudentResult", "BatchResult", "safe_text", "safe_echo", "format_table",
           "csv_cell", "write_csv"]

_BREAK = re.compile(r"\r\n|\r|\n")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class Outcome(StrEnum):
    """What the batch did with one submission."""

    GRADED = "graded"           # graded in this run and recorded in the gradebook
    SKIPPED = "skipped"         # already graded with the same content (its result is recorded), left untouched
    RECOVERED = "recovered"     # finished after the grader was killed; recorded now without grading again
    REFUSED = "refused"         # not graded (a link, an id nbgrader cannot use): 0 points and the reason
    ERROR = "error"             # the grader itself failed; nothing recorded, a rerun retries

    @property
    def recorded(self) -> bool:
        """The gradebook holds this submission's grades."""
        return self in (Outcome.GRADED, Outcome.SKIPPED, Outcome.RECOVERED)


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
    notes: list[str] = field(default_factory=list)      # submission-level events (kernel died, refused, ...)
    status: Outcome = Outcome.GRADED

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

    def by_student(self) -> dict[str, StudentResult]:
        return {s.student: s for s in self.students}


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: object, newline: str = " | ") -> str:
    """``text`` with line breaks replaced by ``newline`` and every other control character escaped."""
    return _UNSAFE.sub(_escape, _BREAK.sub(newline, str(text)))


def safe_echo(echo: Callable[[str], None]) -> Callable[[str], None]:
    """``echo`` that escapes control characters in each line of what it is given (line breaks are kept)."""
    def write(text: str) -> None:
        echo("\n".join(safe_text(line, "") for line in _BREAK.split(str(text))))
    return write


def format_table(batch: BatchResult) -> str:
    """Students × exercises with the total, then the reasons for every lost point."""
    if not batch.students:
        return "(no submissions)"
    names = [safe_text(e.exercise) for e in batch.students[0].exercises]
    ids = {s.student: safe_text(s.student) for s in batch.students}
    width = max([len("student")] + [len(i) for i in ids.values()])
    cols = [max(len(n), 7) for n in names]
    lines = ["  ".join(["student".ljust(width)] + [n.rjust(w) for n, w in zip(names, cols, strict=True)]
                       + ["total".rjust(9)])]
    lines.append("-" * len(lines[0]))
    flags = {Outcome.ERROR: "  (GRADER ERROR: rerun)", Outcome.REFUSED: "  (REFUSED: not graded)"}
    for s in batch.students:
        row = [f"{e.score:g}/{e.max_score:g}".rjust(w) for e, w in zip(s.exercises, cols, strict=True)]
        lines.append("  ".join([ids[s.student].ljust(width)] + row + [f"{s.score:g}/{s.max_score:g}".rjust(9)])
                     + flags.get(s.status, ""))
    # a refused submission's exercises all carry the refusal: it is said once, as a note
    details = [f"  {ids[s.student]} / {safe_text(e.exercise)} ({e.score:g}/{e.max_score:g}): {safe_text(e.reason)}"
               for s in batch.students if s.status is not Outcome.REFUSED for e in s.exercises if e.reason]
    notes = [f"  {ids[s.student]}: {safe_text(note)}" for s in batch.students for note in s.notes]
    if details:
        lines += ["", "Why points were lost:"] + details
    if notes:  # events of a submission (output cut, a kernel restart, refused): not points lost by themselves
        lines += ["", "Notes on submissions:"] + notes
    return "\n".join(lines)


def csv_cell(text: object) -> str:
    """``text`` made inert for a spreadsheet: :func:`safe_text`, and a leading apostrophe before ``= + - @``
    (or a tab or carriage return), which would start a formula (OWASP's CSV injection advice)."""
    value = safe_text(text)
    return "'" + value if value.startswith(_FORMULA) else value


def write_csv(batch: BatchResult, path: Path) -> Path:
    """One row per student and exercise (and a TOTAL row per student): student, exercise, score, max_score, reason."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "exercise", "score", "max_score", "reason"])
        for s in batch.students:
            for e in s.exercises:
                writer.writerow([csv_cell(s.student), csv_cell(e.exercise), f"{e.score:g}", f"{e.max_score:g}",
                                 csv_cell(e.reason)])
            writer.writerow([csv_cell(s.student), "TOTAL", f"{s.score:g}", f"{s.max_score:g}",
                             csv_cell("; ".join(s.notes))])
    os.replace(tmp, path)
    return path
