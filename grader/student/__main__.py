"""``python -m grader.student lab [JUPYTER_ARGS...] | fresh CHAPTER`` (what ``tasks.py lab`` / ``fresh`` run)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.student", description=__doc__)
    parser.add_argument("--root", default=str(ROOT), help="the course checkout (default: this one)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("lab", help="copy what is new in course/ into work/, then JupyterLab on work/ (the arguments "
                               "that follow go to jupyter lab)")
    sub.add_parser("fresh", help="a new copy of one chapter in work/; the old copy is renamed, not deleted"
                   ).add_argument("chapter", help="e.g. 02_backprop")
    # Everything after `lab` goes to jupyter lab, options included: the arguments argparse does not know.
    args, unknown = parser.parse_known_args(argv)
    root = Path(args.root).resolve()
    if args.command == "lab":
        from grader.student.lab import start

        return start(root, [a for a in unknown if a != "--"])
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")

    from grader.student.workspace import fresh

    try:
        aside, copied = fresh(args.chapter, root / "course", root / "work")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    if aside is not None:
        print(f"your previous copy of {args.chapter} is now work/{aside.name}/ (nothing was deleted)")
    for rel in copied:
        print(f"copied course/{rel} -> work/{rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
