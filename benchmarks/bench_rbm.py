"""RBM 784–256, one epoch of PCD-1 over 10,000 binary rows, batch 100, float32: dlcore vs scikit-learn.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m benchmarks.bench_rbm [--runs 3] [--contention]

Data: scikit-learn's 1,797 8×8 digits, upsampled to 28×28 by nearest neighbour, thresholded at
half intensity, drawn 10,000 times with replacement and with 2% of the pixels flipped at random
(so rows are binary, structured like MNIST and all different). Both sides build a fresh model
and run one epoch in the same process: dlcore's ``RBM.fit(epochs=1, batch_size=100, lr=0.1,
persistent=True, progress=False, monitor=False)`` (mini-batches shuffled, data checked for
binary values) against ``sklearn.neural_network.BernoulliRBM(n_components=256, batch_size=100,
n_iter=1, learning_rate=0.1).fit`` (also persistent CD-1, no shuffling, verbose=0).
The two alternate round by round. Target (issue 12): dlcore's median time <= 0.5 × scikit-learn's;
``--threads 1`` limits both to one BLAS thread; ``--contention`` measures again beside a busy process.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks import harness

N_ROWS, N_VISIBLE, N_HIDDEN, BATCH, LR = 10_000, 784, 256, 100, 0.1
TARGET = 0.5  # issue 12: at most half of scikit-learn's time


def make_data(seed: int = 0) -> np.ndarray:
    """10,000 binary 28×28 digit-like rows (float32), as described in the module docstring."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits().images                        # (1797, 8, 8), values 0..16
    idx = (np.arange(28) * 8) // 28
    big = digits[:, idx][:, :, idx].reshape(len(digits), -1) > 8.0
    rows = big[rng.integers(0, len(big), N_ROWS)]
    flips = rng.random(rows.shape) < 0.02
    return (rows ^ flips).astype(np.float32)


def run_dlcore(X: np.ndarray) -> None:
    from dlcore.energy import RBM

    rbm = RBM(N_VISIBLE, N_HIDDEN, rng=0, dtype="float32")
    rbm.fit(X, epochs=1, batch_size=BATCH, lr=LR, k=1, persistent=True, rng=1, progress=False, monitor=False)


def run_sklearn(X: np.ndarray) -> None:
    from sklearn.neural_network import BernoulliRBM

    BernoulliRBM(n_components=N_HIDDEN, batch_size=BATCH, n_iter=1, learning_rate=LR, random_state=0).fit(X)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_arguments(parser, rounds=9)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    args = parser.parse_args(argv)
    X = make_data()
    print(f"RBM {N_VISIBLE}-{N_HIDDEN}, one epoch of PCD-1, {N_ROWS} binary rows, batch {BATCH}, float32")
    with harness.thread_limit(args.threads):
        print(harness.machine_line())
        fns = {"dlcore RBM.fit": lambda: run_dlcore(X), "sklearn BernoulliRBM.fit": lambda: run_sklearn(X)}
        harness.compare("rbm", fns, ours="dlcore RBM.fit", ref="sklearn BernoulliRBM.fit", target=TARGET,
                        rounds=args.rounds, runs=args.runs, contention=args.contention, ref_label="scikit-learn")
        if args.no_memory:
            return
        peak_ours = harness.traced_peak(lambda: run_dlcore(X))
        peak_ref = harness.traced_peak(lambda: run_sklearn(X))
    print(f"peak traced memory: dlcore {peak_ours / 2**20:.1f} MiB, sklearn {peak_ref / 2**20:.1f} MiB "
          f"(the {X.nbytes / 2**20:.1f} MiB data array is allocated before tracing)")


if __name__ == "__main__":
    main()
