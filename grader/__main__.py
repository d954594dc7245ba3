"""Command line: ``python -m grader COMMAND`` (see grader/README.md and docs/instructor-workflow.md).

Course: release, check-sync, lab, nbgrader. Grading: autograde. A term: term, roster, exchange-release,
collect, grade-collected, exchange-feedback, export.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def _release(args: argparse.Namespace) -> int:
    from grader.course.release import NbgraderError, release

    try:
        written = release(args.chapter or None, source_root=Path(args.course_root))
    except (ValueError, NbgraderError) as exc:
        print(f"release failed: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"released {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    if not written:
        print("nothing to release: solutions/ holds no chapter notebooks")
    return 0


def _check_sync(args: argparse.Namespace) -> int:
    from grader.course.release import NbgraderError, check_sync

    try:
        problems = check_sync(source_root=Path(args.course_root))
    except NbgraderError as exc:
        print(f"check-sync failed: {exc}", file=sys.stderr)
        return 1
    if problems:
        print("course/ is out of sync with solutions/. Student work lives in work/, which a release never touches; "
              "if you edited course/ itself, run `python3 tasks.py lab` once first (it copies those edits into work/). "
              "Then regenerate course/ with `python -m grader release`:")
        for line in problems:
            print(f"  {line}")
        return 1
    print("course/ is in sync with solutions/")
    return 0


def _autograde(args: argparse.Namespace) -> int:
    from grader.course.release import NbgraderError
    from grader.trusted.autograde import Outcome, autograde
    from grader.trusted.sandbox import Limits

    limits = Limits(memory_mb=args.memory_mb, file_mb=args.file_mb, processes=args.processes,
                    output_cell_kb=args.output_kb, cpu_seconds=args.cpu_seconds)
    try:
        batch = autograde(args.chapter, Path(args.submissions), source_root=Path(args.course_root),
                          timeout=args.timeout, notebook_timeout=args.notebook_timeout,
                          workdir=Path(args.workdir) if args.workdir else None, feedback=args.feedback,
                          csv_path=Path(args.csv) if args.csv else None, workers=args.workers,
                          regrade=args.regrade, show_hidden=args.show_hidden, limits=limits,
                          mathjax_url=args.mathjax_url)
    except (ValueError, NbgraderError) as exc:
        print(f"autograde failed: {exc}", file=sys.stderr)
        return 1
    return 2 if any(s.status is Outcome.ERROR for s in batch.students) else 0


def _lab(args: argparse.Namespace) -> int:
    """JupyterLab for the instructor: course root = the repository, nbgrader configured by grader/."""
    from grader.course.release import REPO_ROOT, ensure_scripts_on_path

    ensure_scripts_on_path()
    env = dict(os.environ)
    # nbgrader's Formgrader looks for nbgrader_config.py in every Jupyter config directory.
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        [str(REPO_ROOT / "grader")] + [p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p])
    # The Formgrader needs the course root inside the server's root directory.
    root = Path(env.get("DLCOURSE_COURSE_ROOT") or REPO_ROOT).resolve()
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={root}", *args.rest]
    return subprocess.call(cmd, cwd=root, env=env)


def _nbgrader(args: argparse.Namespace) -> int:
    """Any nbgrader command with the course's configuration."""
    from grader.course.release import REPO_ROOT, nbgrader_command, nbgrader_env

    rest = [a for a in args.rest if a != "--"]
    return subprocess.call(nbgrader_command(*rest), cwd=REPO_ROOT, env=nbgrader_env(REPO_ROOT))


def main(argv: list[str] | None = None) -> int:
    from grader.course.release import REPO_ROOT

    root_help = "course root holding solutions/ and course/ (default: this repository)"
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="regenerate course/ from solutions/ (nbgrader generate_assignment)")
    p.add_argument("chapter", nargs="*", help="chapters to release (default: all under solutions/)")
    p.add_argument("--course-root", default=str(REPO_ROOT), help=root_help)
    p.set_defaults(func=_release)

    p = sub.add_parser("check-sync", help="exit 1 and list the files where course/ differs from a fresh release")
    p.add_argument("--course-root", default=str(REPO_ROOT), help=root_help)
    p.set_defaults(func=_check_sync)

    p = sub.add_parser("autograde", help="autograde a folder of submissions (one sub-folder per student)",
                       description="Autograde SUBMISSIONS/<student>/<notebook>.ipynb in sandboxed kernels "
                                   "(see grader/README.md).")
    p.add_argument("chapter", help="chapter (assignment) name, e.g. 02_backprop")
    p.add_argument("submissions", help="SUBMISSIONS_DIR/<student_id>/<notebook>.ipynb")
    p.add_argument("--timeout", type=int, default=60, help="time limit per cell in seconds (default 60)")
    p.add_argument("--notebook-timeout", type=int, default=600,
                   help="time limit per notebook in seconds (default 600)")
    p.add_argument("--csv", help="write student, exercise, score, max_score, reason to this CSV file")
    p.add_argument("--feedback", action="store_true", help="generate feedback HTML (nbgrader generate_feedback)")
    p.add_argument("--workdir", help="scratch course root (default: a new temporary directory, kept); "
                                     "rerunning on the same one grades only what is not graded yet")
    p.add_argument("--workers", type=int, default=None,
                   help="submissions graded in parallel (default: the number of cores)")
    p.add_argument("--regrade", action="store_true", help="grade every submission again, also those already graded")
    p.add_argument("--show-hidden", action="store_true", help="show the hidden tests' source in the feedback")
    p.add_argument("--memory-mb", type=int, default=2048, help="memory limit of a submission's kernel (MB)")
    p.add_argument("--cpu-seconds", type=int, default=0,
                   help="CPU time limit per kernel process (default: the notebook time limit + 30 s)")
    p.add_argument("--file-mb", type=int, default=64, help="largest file a submission may write (MB)")
    p.add_argument("--processes", type=int, default=64, help="processes and threads a submission may have")
    p.add_argument("--output-kb", type=int, default=256, help="output kept per cell (kB)")
    p.add_argument("--mathjax-url", default="", help="load MathJax from this URL in the feedback HTML "
                                                     "(default: a CDN; offline the feedback says so)")
    p.add_argument("--course-root", default=str(REPO_ROOT), help=root_help)
    p.set_defaults(func=_autograde)

    p = sub.add_parser("lab", help="JupyterLab with nbgrader's Formgrader configured for this course")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="extra arguments for jupyter lab")
    p.set_defaults(func=_lab)

    p = sub.add_parser("nbgrader", help="run any nbgrader command with the course's configuration")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="nbgrader arguments, e.g. db student list")
    p.set_defaults(func=_nbgrader)

    # Instructor workflow on nbgrader's exchange (grader/course/cli.py): term, roster, exchange-release,
    # collect, grade-collected, exchange-feedback, export.
    from grader.course.cli import add_commands as add_workflow_commands
    add_workflow_commands(sub)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
