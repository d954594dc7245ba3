"""``python -m grader`` commands of the term workflow: term, roster, exchange-release, collect, grade-collected,
exchange-feedback, export (see docs/instructor-workflow.md). Each is a thin layer over grader/course/."""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from grader.course.release import REPO_ROOT, NbgraderError
from grader.course.term import TermError, show_utc, init_term, load_term, set_duedate
from grader.course.workflow import (
    collect,
    export_grades,
    grade_collected,
    release_feedback,
    release_to_exchange,
    term_status,
)

__all__ = ["add_commands"]


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
        print(f"{args.chapter}: due {show_utc(due, term.timezone)}")
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
