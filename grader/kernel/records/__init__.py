"""``record_<kind>(student, inputs) -> dict``: run the student's object on a plan's inputs (kernel side).

One module per topic. A record function sees only ``inputs`` (plain data from the plan) and the
student's object; it returns plain data (arrays, numbers, strings, lists, dicts) and catches the
student's exceptions and warnings into the record (see ``grader.kernel.student``).
"""
