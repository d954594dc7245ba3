"""Moved to :mod:`grader.course.release`; this name stays so that ``from grader.release import ...`` works."""

import sys

from grader.course import release as _module

sys.modules[__name__] = _module
