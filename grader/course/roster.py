"""Roster import (``python -m grader roster import FILE.csv``): a CSV of students into nbgrader's gradebook.

Every row is checked before anything is written (one bad row: nothing imported, every problem listed by
line); importing again is idempotent. The CSV's columns: docs/instructor-workflow.md, "Roster CSV". A student
id must be usable by nbgrader's exchange as the student's JupyterHub user name (:func:`validate_student_id`).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import MissingEntry, Student

from grader.course.release import gradebook

__all__ = ["COLUMNS", "RosterError", "RosterRow", "ImportReport", "read_roster", "import_roster", "list_students",
           "validate_student_id"]

COLUMNS = ("student_id", "first_name", "last_name", "email")
_ALIASES = {"id": "student_id", "student": "student_id", "username": "student_id"}
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
_MAX_ID = 128


class RosterError(ValueError):
    """The roster file cannot be imported; ``problems`` lists every bad row as 'line N: ...'."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.problems = list(problems)
        head = f"{path}: {len(self.problems)} problem(s), nothing was imported"
        super().__init__("\n".join([head] + [f"  {p}" for p in self.problems]))


@dataclass(frozen=True)
class RosterRow:
    student_id: str
    first_name: str | None
    last_name: str | None
    email: str | None


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    not_in_file: list[str] = field(default_factory=list)     # in the gradebook, absent from the file (kept)

    def summary(self) -> str:
        text = (f"{len(self.created)} added, {len(self.updated)} updated, {len(self.unchanged)} unchanged")
        if self.not_in_file:
            text += (f"; {len(self.not_in_file)} student(s) in the gradebook are not in the file and were kept: "
                     + ", ".join(self.not_in_file[:10]) + (" …" if len(self.not_in_file) > 10 else ""))
        return text


def validate_student_id(student_id: str) -> str | None:
    """Why ``student_id`` cannot be used with nbgrader's exchange, or None when it can.

    The exchange uses ``+`` and ``*`` as separators and wildcards, and the id becomes a directory name
    (no ``/``, ``\\``, white space, control characters or leading ``.``).
    """
    if not student_id:
        return "student_id is empty"
    if len(student_id) > _MAX_ID:
        return f"student_id is longer than {_MAX_ID} characters"
    bad = sorted({ch for ch in student_id if ch in "+*/\\" or ch.isspace() or not ch.isprintable()})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        return (f"student_id {student_id!r} contains {shown}; nbgrader's exchange cannot use it "
                "(the id must be the student's JupyterHub user name)")
    if student_id.startswith("."):
        return f"student_id {student_id!r} starts with '.' (it becomes a hidden directory name)"
    return None


def read_roster(path: Path | str) -> list[RosterRow]:
    """Parse and check a roster CSV; raises RosterError listing every problem (nothing half-read)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise RosterError(path, [f"cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise RosterError(path, [f"not UTF-8 text (byte {exc.start}); save the file as CSV UTF-8"]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise RosterError(path, ["the file is empty; expected a header row: " + ",".join(COLUMNS)]) from None
    except csv.Error as exc:
        raise RosterError(path, [f"line 1: {exc}"]) from None
    names = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    unknown = [repr(h) for h, n in zip(header, names, strict=True) if n not in COLUMNS]
    dupes = sorted({n for n in names if names.count(n) > 1})
    problems = [f"line 1: {why}" for bad, why in (
        (unknown, f"unknown column(s) {', '.join(unknown)}; expected {', '.join(COLUMNS)}"),
        (dupes, f"column(s) given twice: {', '.join(dupes)}"),
        ("student_id" not in names, f"no student_id column (the header must name the columns: {','.join(COLUMNS)})"),
    ) if bad]
    if problems:
        raise RosterError(path, problems)

    rows: list[RosterRow] = []
    first_line: dict[str, int] = {}
    try:
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue                                   # blank line
            if len(record) != len(names):
                why = f"{len(record)} field(s), the header has {len(names)} (a comma inside a name needs quotes)"
            else:
                values = {n: cell.strip() or None for n, cell in zip(names, record, strict=True)}
                why = _row_problem(values, reader.line_num, first_line)
            if why:
                problems.append(f"line {reader.line_num}: {why}")
            else:
                rows.append(RosterRow(**{column: values.get(column) for column in COLUMNS}))
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: {exc}")
    if problems:
        raise RosterError(path, problems)
    if not rows:
        raise RosterError(path, ["no students: the file has a header but no rows"])
    return rows


def _row_problem(values: dict[str, str | None], line: int, first_line: dict[str, int]) -> str | None:
    """Why a row (its cells by column, None when empty) cannot be imported, or None; ``first_line`` records where
    each student_id appeared first."""
    sid, email = values["student_id"] or "", values.get("email")
    why = validate_student_id(sid)
    if why:
        return why
    if sid in first_line:
        return f"student_id {sid!r} already appears on line {first_line[sid]}"
    first_line[sid] = line
    if email is not None and not _EMAIL.match(email):
        return f"email {email!r} of {sid!r} is not an e-mail address"
    long = [n for n in ("first_name", "last_name", "email") if len(values.get(n) or "") > _MAX_ID]
    return f"{', '.join(long)} of {sid!r} longer than {_MAX_ID} characters" if long else None


def import_roster(path: Path | str, db_url: str, course_id: str = "dlcourse") -> ImportReport:
    """Add or update every student of the roster in the gradebook ``db_url``; all or nothing."""
    rows = read_roster(path)
    report = ImportReport()
    with gradebook(db_url, course_id) as gb:
        try:
            for row in rows:
                wanted = {"first_name": row.first_name, "last_name": row.last_name, "email": row.email}
                try:
                    student = gb.find_student(row.student_id)
                except MissingEntry:
                    gb.db.add(Student(id=row.student_id, **wanted))
                    report.created.append(row.student_id)
                    continue
                changed = {k: v for k, v in wanted.items() if getattr(student, k) != v}
                for key, value in changed.items():
                    setattr(student, key, value)
                (report.updated if changed else report.unchanged).append(row.student_id)
            gb.db.commit()                                  # one transaction: all rows or none
        except Exception:
            gb.db.rollback()
            raise
        listed = {row.student_id for row in rows}
        report.not_in_file = sorted(s.id for s in gb.students if s.id not in listed)
    return report


def list_students(db_url: str, course_id: str = "dlcourse") -> list[RosterRow]:
    """The gradebook's students, sorted by id."""
    with gradebook(db_url, course_id) as gb:
        return [RosterRow(s.id, s.first_name, s.last_name, s.email) for s in sorted(gb.students, key=lambda s: s.id)]
