"""Command line: ``python -m grader COMMAND`` (see grader/README.md and docs/instructor-workflow.md).

Course: release, check-sync, lab, nbgrader. Grading: autograde. A term (grader/course/): term, roster,
exchange-release, collect, grade-collected, exchange-feedback, export.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

from grader.course import release as course_release
from grader.course import roster, workflow
from grader.course import term as course_term
from grader.course.release import REPO_ROOT, NbgraderError
from grader.student.lab import prepend_paths
from grader.trusted.autograde import Outcome, autograde
from grader.trusted.sandbox import Limits


def _release(args: argparse.Namespace, term: None) -> None:
    written = course_release.release(args.chapter or None, source_root=Path(args.course_root))
    for path in written:
        print(f"released {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    if not written:
        print("nothing to release: solutions/ holds no chapter notebooks")


def _check_sync(args: argparse.Namespace, term: None) -> int | None:
    problems = course_release.check_sync(source_root=Path(args.course_root))
    if problems:
        print("course/ is out of sync with solutions/. Student work lives in work/, which a release never touches; "
              "if you edited course/ itself, run `python3 tasks.py lab` once first (it copies those edits into work/). "
              "Then regenerate course/ with `python -m grader release`:")
        for line in problems:
            print(f"  {line}")
        return 1
    print("course/ is in sync with solutions/")


def _autograde(args: argparse.Namespace, term: None) -> int:
    limits = Limits(memory_mb=args.memory_mb, file_mb=args.file_mb, processes=args.processes,
                    output_cell_kb=args.output_kb, cpu_seconds=args.cpu_seconds)
    batch = autograde(args.chapter, Path(args.submissions), source_root=Path(args.course_root),
                      timeout=args.timeout, notebook_timeout=args.notebook_timeout,
                      workdir=Path(args.workdir) if args.workdir else None, feedback=args.feedback,
                      csv_path=Path(args.csv) if args.csv else None, workers=args.workers,
                      regrade=args.regrade, show_hidden=args.show_hidden, limits=limits,
                      mathjax_url=args.mathjax_url)
    return 2 if any(s.status is Outcome.ERROR for s in batch.students) else 0


def _lab(args: argparse.Namespace, term: None) -> int:
    """JupyterLab for the instructor: course root = the repository, nbgrader configured by grader/."""
    course_release.ensure_scripts_on_path()
    env = dict(os.environ)
    # nbgrader's Formgrader looks for nbgrader_config.py in every Jupyter config directory.
    prepend_paths(env, "JUPYTER_CONFIG_PATH", [str(REPO_ROOT / "grader")])
    # The Formgrader needs the course root inside the server's root directory.
    root = Path(env.get("DLCOURSE_COURSE_ROOT") or REPO_ROOT).resolve()
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={root}", *args.rest]
    return subprocess.call(cmd, cwd=root, env=env)


def _nbgrader(args: argparse.Namespace, term) -> int:
    """Any nbgrader command with the course's configuration, on the repository or (``term nbgrader``) a term."""
    root = term.root if term else REPO_ROOT
    return subprocess.call(course_release.nbgrader_command(*[a for a in args.rest if a != "--"]), cwd=root,
                           env=course_release.nbgrader_env(root))


def _term_init(args: argparse.Namespace, term: None) -> None:
    course_term.init_term(args.dir, args.exchange, source_root=Path(args.course_root),
                          chapter_names=args.chapters or None, late_penalty=args.late_penalty, timezone=args.timezone)


def _term_duedate(args: argparse.Namespace, term) -> None:
    due = course_term.set_duedate(term, args.chapter, None if args.when.lower() == "none" else args.when)
    print(f"{args.chapter}: due {course_term.show_utc(due, term.timezone)}")


def _roster_import(args: argparse.Namespace, term) -> None:
    print(f"roster {args.file}: {roster.import_roster(args.file, term.db_url, term.course_id).summary()}")


def _roster_list(args: argparse.Namespace, term) -> None:
    writer = csv.writer(sys.stdout)
    writer.writerow(roster.COLUMNS)
    for row in roster.list_students(term.db_url, term.course_id):
        writer.writerow([getattr(row, column) or "" for column in roster.COLUMNS])


def _exchange_release(args: argparse.Namespace, term) -> None:
    path = workflow.release_to_exchange(term, args.chapter, force=args.force)
    print(f"{args.chapter} released to {path} (students: nbgrader fetch_assignment {args.chapter} "
          f"--course {term.course_id})")


def _collect(args: argparse.Namespace, term) -> None:
    print(workflow.collect(term, args.chapter, update=args.update, before_duedate=args.before_duedate).summary())


def _grade_collected(args: argparse.Namespace, term) -> None:
    workflow.grade_collected(term, args.chapter, regrade_all=args.all, students=args.student or None,
                             workers=args.workers, timeout=args.timeout, notebook_timeout=args.notebook_timeout,
                             mathjax_url=args.mathjax_url)


def _export(args: argparse.Namespace, term) -> None:
    path = workflow.export_grades(term, args.to or term.root / "exports" / "grades.csv", args.chapter)
    print(f"grades exported to {path}")


def _arg(*flags: str, **options) -> tuple[tuple[str, ...], dict]:
    return flags, options


def _flag(name: str, help: str) -> tuple[tuple[str, ...], dict]:
    return _arg(name, action="store_true", help=help)


CHAPTER = _arg("chapter")
TERM = _arg("--term", help="term directory (default: $DLCOURSE_TERM)")
COURSE_ROOT = _arg("--course-root", default=str(REPO_ROOT),
                   help="course root holding solutions/ and course/ (default: this repository)")
NBGRADER_ARGS = _arg("rest", nargs=argparse.REMAINDER, help="nbgrader arguments, e.g. db student list")
TIMEOUTS = [_arg("--timeout", type=int, default=60, help="time limit per cell in seconds (default 60)"),
            _arg("--notebook-timeout", type=int, default=600, help="time limit per notebook in seconds (default 600)"),
            _arg("--workers", type=int, help="submissions graded in parallel (default: the number of cores)")]
MATHJAX = _arg("--mathjax-url", default="",
               help="load MathJax from this URL in the feedback HTML (default: a CDN; offline the feedback says so)")

GROUPS = {"term": "a term directory: init, show, duedate, nbgrader (see docs/instructor-workflow.md)",
          "roster": "import a roster CSV (student_id, first_name, last_name, email) or list it"}

# One argparse tree from this table; a name with a space (``term init``) is an action under a group (``term``).
# name: (handler(args, term), help, arguments); a handler's int is the exit status (anything else: 0), and a
# command with --term gets the loaded term.
COMMANDS = {
    "release": (_release, "regenerate course/ from solutions/ (nbgrader generate_assignment)", [
        _arg("chapter", nargs="*", help="chapters to release (default: all under solutions/)"), COURSE_ROOT]),
    "check-sync": (_check_sync, "exit 1 and list the files where course/ differs from a fresh release", [COURSE_ROOT]),
    "autograde": (_autograde, "autograde a folder of submissions (one sub-folder per student)", [
        _arg("chapter", help="chapter (assignment) name, e.g. 02_backprop"),
        _arg("submissions", help="SUBMISSIONS_DIR/<student_id>/<notebook>.ipynb"),
        *TIMEOUTS,
        _arg("--csv", help="write student, exercise, score, max_score, reason to this CSV file"),
        _flag("--feedback", "generate feedback HTML (nbgrader generate_feedback)"),
        _arg("--workdir", help="scratch course root (default: a new temporary directory, kept); "
                               "rerunning on the same one grades only what is not graded yet"),
        _flag("--regrade", "grade every submission again, also those already graded"),
        _flag("--show-hidden", "show the hidden tests' source in the feedback"),
        _arg("--memory-mb", type=int, default=2048, help="memory limit of a submission's kernel (MB)"),
        _arg("--cpu-seconds", type=int, default=0,
             help="CPU time limit per kernel process (default: the notebook time limit + 30 s)"),
        _arg("--file-mb", type=int, default=64, help="largest file a submission may write (MB)"),
        _arg("--processes", type=int, default=64, help="processes and threads a submission may have"),
        _arg("--output-kb", type=int, default=256, help="output kept per cell (kB)"),
        MATHJAX, COURSE_ROOT]),
    "lab": (_lab, "JupyterLab with nbgrader's Formgrader configured for this course", [
        _arg("rest", nargs=argparse.REMAINDER, help="extra arguments for jupyter lab")]),
    "nbgrader": (_nbgrader, "run any nbgrader command with the course's configuration", [NBGRADER_ARGS]),
    "term init": (_term_init, "create a term directory (gradebook, settings) outside the repository", [
        _arg("dir", help="the term directory"),
        _arg("--exchange", required=True, help="nbgrader's exchange directory (shared by every user)"),
        _arg("--late-penalty", default="none", help="none (flag late submissions only; default), zero, "
                                                    "or a percentage per started day, e.g. 10%%"),
        _arg("--timezone", default="UTC", help="time zone for due dates typed without one (default UTC)"),
        COURSE_ROOT,
        _arg("chapters", nargs="*", help="chapters (default: all under solutions/)")]),
    "term show": (lambda args, term: print(workflow.term_status(term)),
                  "settings and, per chapter, due date and counts", [TERM]),
    "term duedate": (_term_duedate, "set a chapter's due date ('none' clears it)", [
        CHAPTER, _arg("when", help="e.g. '2025-06-01 23:59' (term time zone) or '2025-06-01 23:59:00 Asia/Tokyo'"),
        TERM]),
    "term nbgrader": (_nbgrader, "any nbgrader command on the term (course root = TERM)", [TERM, NBGRADER_ARGS]),
    "roster import": (_roster_import, "add or update the students of FILE.csv in the term's gradebook",
                      [_arg("file"), TERM]),
    "roster list": (_roster_list, "the gradebook's students as CSV", [TERM]),
    "exchange-release": (_exchange_release, "nbgrader release_assignment: course/<chapter> into the exchange", [
        CHAPTER, _flag("--force", "release again over an earlier release"), TERM]),
    "collect": (_collect, "nbgrader collect: the latest submissions into TERM/collected/", [
        CHAPTER, _flag("--update", "replace collected submissions by newer ones"),
        _flag("--before-duedate", "the latest submission before the due date"), TERM]),
    "grade-collected": (_grade_collected, "autograde new/changed collected submissions, apply late penalties", [
        CHAPTER, _flag("--all", "regrade every collected submission"),
        _arg("--student", action="append", help="grade only this student (repeatable; always regrades)"),
        *TIMEOUTS, MATHJAX, TERM]),
    "exchange-feedback": (lambda args, term: workflow.release_feedback(term, args.chapter),
                          "nbgrader release_feedback for the graded submissions", [CHAPTER, TERM]),
    "export": (_export, "nbgrader export: one CSV row per student and chapter", [
        _arg("--to", help="CSV file (default TERM/exports/grades.csv)"),
        _arg("--chapter", action="append", help="only this chapter (repeatable)"), TERM]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    groups = {}
    for name, (handler, help_text, arguments) in COMMANDS.items():
        group, _, action = name.rpartition(" ")
        if group and group not in groups:
            groups[group] = commands.add_parser(group, help=GROUPS[group]).add_subparsers(dest="action", required=True)
        p = (groups[group] if group else commands).add_parser(action, help=help_text, description=help_text)
        for flags, options in arguments:
            p.add_argument(*flags, **options)
        p.set_defaults(handler=handler, name=name)
    args = parser.parse_args(argv)
    try:
        status = args.handler(args, course_term.load_term(args.term) if "term" in args else None)
    except (ValueError, NbgraderError) as exc:          # TermError and RosterError are ValueErrors
        print(f"{args.name} failed: {exc}", file=sys.stderr)
        return 1
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
