"""The course side of the grader: release (solutions/ -> course/), roster, nbgrader's exchange, the term workflow.

Nothing here runs student code; autograding is :func:`grader.trusted.autograde.autograde`, which the
term workflow calls in-process.
"""
