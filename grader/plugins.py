"""nbgrader plugins of the course: the late-penalty rule and a grades export.

Loaded by nbgrader from configuration (a term's nbgrader_config.py, written by
``python -m grader term init``)::

    c.AssignLatePenalties.plugin_class = "grader.plugins.LatePenalty"
    c.LatePenalty.percent_per_day = 10.0          # or c.LatePenalty.penalty_method = "zero"
    nbgrader export --exporter=grader.plugins.GradesCsvExport
"""

from __future__ import annotations

import csv
import math

from nbgrader.api import MissingEntry
from nbgrader.plugins import CsvExportPlugin, LateSubmissionPlugin
from traitlets import Float

from grader.trusted.report import csv_cell

__all__ = ["LatePenalty", "GradesCsvExport"]


class LatePenalty(LateSubmissionPlugin):
    """Late penalty per started day: penalty = score · min(1, p/100 · ⌈seconds_late / 86400⌉).

    ``percent_per_day`` = 0 falls back to nbgrader's ``penalty_method`` (``none``: no penalty, the
    submission is only flagged late; ``zero``: the whole score).
    """

    percent_per_day = Float(0.0, help="Percent of the notebook's score deducted per started day late.").tag(
        config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float | None:
        if self.percent_per_day <= 0:
            return super().late_submission_penalty(student_id, score, total_seconds_late)
        if total_seconds_late <= 0:
            return None
        days = math.ceil(total_seconds_late / 86400.0)
        return min(score, score * self.percent_per_day / 100.0 * days)


class GradesCsvExport(CsvExportPlugin):
    """nbgrader's CSV export, quoted properly (names with commas), plus ``seconds_late`` and ``late``; text made
    inert as in the batch CSV (:func:`grader.trusted.report.csv_cell`: no formula from a name or an id).

    Columns: assignment, duedate, timestamp, student_id, last_name, first_name, email, raw_score,
    late_submission_penalty, score, max_score, seconds_late, late (yes/no).
    """

    def export(self, gradebook) -> None:
        dest = self.to or "grades.csv"
        students = {str(s) for s in self.student}
        assignments = {str(a) for a in self.assignment}
        self.log.info("Exporting grades to %s", dest)
        with open(dest, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                             "raw_score", "late_submission_penalty", "score", "max_score", "seconds_late", "late"])
            for assignment in sorted(gradebook.assignments, key=lambda a: a.name):
                if assignments and assignment.name not in assignments:
                    continue
                for student in sorted(gradebook.students, key=lambda s: s.id):
                    if students and student.id not in students:
                        continue
                    try:
                        sub = gradebook.find_submission(assignment.name, student.id)
                    except MissingEntry:
                        timestamp, raw, penalty, late = "", 0.0, 0.0, 0.0
                    else:
                        timestamp, raw, late = sub.timestamp, sub.score, sub.total_seconds_late
                        penalty = sub.late_submission_penalty or 0.0
                    row = [assignment.name, assignment.duedate, timestamp, student.id, student.last_name,
                           student.first_name, student.email, raw, penalty, max(0.0, raw - penalty),
                           assignment.max_score, late, "yes" if late > 0 else "no"]
                    writer.writerow([_fmt(value) for value in row])


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return csv_cell(value)
    return f"{value:g}" if isinstance(value, float) else str(value)
