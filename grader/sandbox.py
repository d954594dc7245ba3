"""The sandbox of a submission's kernel lives in grader/trusted/sandbox.py; this name stays for its callers."""

import sys

from grader.trusted import sandbox as _module

sys.modules[__name__] = _module
