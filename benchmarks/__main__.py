"""Run every benchmark: ``python -m benchmarks [name ...]`` (names: mlp, lenet, lstm, rbm)."""

from __future__ import annotations

import importlib
import sys

NAMES = ["mlp", "lenet", "lstm", "rbm"]

if __name__ == "__main__":
    chosen = sys.argv[1:] or NAMES
    for name in chosen:
        print(f"\n===== {name} =====")
        try:
            importlib.import_module(f"benchmarks.bench_{name}").main()
        except ImportError as exc:  # an optional dependency (scikit-learn, threadpoolctl) is missing
            print(f"[{name}] skipped: {exc}")
