"""``plan_<kind>(reference, **options) -> Plan`` and ``judge_<kind>(plan, record) -> Verdict`` (trusted side).

One module per topic, matching ``grader/kernel/records/<topic>.py``. A plan draws its inputs from
seeds and runs dlcore's reference on them; only ``plan.inputs`` ever reaches the kernel.
"""
