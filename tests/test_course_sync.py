"""course/ is exactly what `python -m grader release` makes from solutions/ (byte for byte)."""

from __future__ import annotations

import pytest

from grader.course.release import chapters, check_sync


def test_course_is_the_release_of_solutions():
    if not chapters():
        pytest.skip("solutions/ holds no chapter notebooks yet, so there is nothing to release")
    problems = check_sync()
    assert problems == [], (
        "course/ differs from a fresh release of solutions/. Student work lives in work/ (a release never "
        "touches it); if you edited course/ itself, run `python3 tasks.py lab` once first, which copies those "
        "edits into work/. Then run `python -m grader release` and commit course/:\n  " + "\n  ".join(problems))
