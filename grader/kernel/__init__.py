"""Kernel side of the grader: what runs inside the student's (sandboxed) kernel.

Modules here import only the standard library, NumPy and ``grader.kernel.*``; never dlcore's
references and never ``grader.trusted``. At grading they are the only grader code the kernel has.
"""
