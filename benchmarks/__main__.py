"""Run every benchmark: ``python -m benchmarks [name ...]`` (names: mlp, lenet, lstm, rbm)."""

from __future__ import annotations

import importlib
import sys

NAMES = ["mlp", "lenet", "lstm", "rbm"]

if __name__ == "__main__":
    chosen = sys.argv[1:] or NAMES
    for name in chosen:
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
        except ImportError as exc:
            print(f"[{name}] not available: {exc}")
            continue
        print(f"\n===== {name} =====")
        module.main()
