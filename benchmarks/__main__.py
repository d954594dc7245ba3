"""Run every benchmark: ``python -m benchmarks [name ...] [--runs 3] [--contention] [--threads N]``.

Names: mlp, lenet, lstm, rbm (default: all four); the options go to every script (see harness).
"""

from __future__ import annotations

import importlib
import sys

NAMES = ["mlp", "lenet", "lstm", "rbm"]

if __name__ == "__main__":
    names = [a for a in sys.argv[1:] if a in NAMES]
    options = [a for a in sys.argv[1:] if a not in NAMES]
    for name in names or NAMES:
        print(f"\n===== {name} =====")
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
        except ImportError as exc:  # an optional dependency (scikit-learn, threadpoolctl) is missing
            print(f"[{name}] skipped: {exc}")
            continue
        module.main(options)
