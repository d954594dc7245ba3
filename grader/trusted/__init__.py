"""Trusted side of the grader: plans, judges and everything that decides a score. Never enters the kernel."""
