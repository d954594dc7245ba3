"""Timing and memory helpers shared by the benchmarks (never used by tests).

Times are medians over rounds after a warm-up, measured with ``time.perf_counter``; peak
memory is the high-water mark of allocations traced by ``tracemalloc`` (NumPy registers its
buffers there; PyTorch does not, so bench_lstm also measures the RSS growth of a child process).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Timing:
    name: str
    median_s: float
    rounds: list[float]

    def __str__(self) -> str:
        return f"{self.name}: median {self.median_s * 1e3:.2f} ms over {len(self.rounds)} rounds"


def measure(name: str, fn: Callable[[], Any], *, rounds: int = 5, warmup: int = 1, inner: int = 1) -> Timing:
    """Median wall time of ``fn()`` (averaged over ``inner`` calls per round)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return Timing(name, statistics.median(times), times)


def traced_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated through tracemalloc (NumPy registers its buffers there) while running ``fn``."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def ratio_line(ours: Timing, ref: Timing | None, target: float | None = None, *,
               missing: str = "install torch==2.13.0 to compare") -> str:
    """'ours / ref = r (target <= t: met|MISSED)' or a note (``missing``) that the reference is not there."""
    if ref is None:
        return f"{ours}\n  reference not available ({missing})"
    r = ours.median_s / ref.median_s
    verdict = "" if target is None else f"  (target <= {target:.2f}: {'met' if r <= target else 'MISSED'})"
    return f"{ours}\n{ref}\n  ratio dlcore / reference = {r:.2f}{verdict}"


def blas_info() -> str:
    """Which BLAS library and kernel NumPy runs (threadpoolctl), and the OPENBLAS_* overrides in force."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    parts = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} threads={i.get('num_threads')}"
             for i in threadpool_info() if i.get("user_api") == "blas"]
    env = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    return "; ".join(parts) + (f"; env {env}" if env else "; no OPENBLAS_* overrides")


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages and the CPU count, e.g. '0.12 0.30 0.41 on 2 CPUs'."""
    try:
        loads = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # Windows
        loads = "n/a"
    return f"{loads} on {os.cpu_count()} CPUs"


def cpu_model() -> str:
    """The processor's name (from /proc/cpuinfo on Linux, platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """One line naming the CPU, the BLAS kernel and thread count, dlcore's thread policy and the load."""
    from dlcore import backend

    policy = backend.thread_policy() if hasattr(backend, "thread_policy") else "BLAS default"
    return (f"machine: {cpu_model()}, {os.cpu_count()} CPUs; BLAS: {blas_info()}; "
            f"dlcore threads: {policy}; load average {load_average()}")


# The loop also ends when its parent is gone (a benchmark killed with SIGKILL never runs its cleanup): it checks
# every few million additions that the parent that started it is still its parent.
_BUSY = ("import os, sys\nparent = int(sys.argv[1])\nsys.stdout.write('ready\\n')\nsys.stdout.flush()\nx = 0\n"
         "while True:\n    x += 1\n    if x % 5_000_000 == 0 and os.getppid() != parent:\n        break\n")


@contextlib.contextmanager
def busy_process(n: int = 1) -> Iterator[list[int]]:
    """Run ``n`` CPU-bound processes (a pure-Python counting loop each) beside the block; yields their pids.

    Each child reports 'ready' once its loop is about to start, and the block begins only after every
    child has said so (no fixed sleep); the children are ended, by their own pids, when the block exits.
    """
    procs = [subprocess.Popen([sys.executable, "-c", _BUSY, str(os.getpid())], stdout=subprocess.PIPE, text=True)
             for _ in range(n)]
    try:
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("the busy process did not start")
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
            proc.stdout.close()


def contention_line(name: str, quiet: Timing, busy: Timing, limit: float = 2.0) -> str:
    """'name: quiet q ms, contended c ms, ratio r (target <= 2.00: met|MISSED)'."""
    r = busy.median_s / quiet.median_s
    return (f"  {name}: quiet {quiet.median_s * 1e3:.2f} ms, with a busy process {busy.median_s * 1e3:.2f} ms, "
            f"contended / quiet = {r:.2f} (target <= {limit:.2f}: {'met' if r <= limit else 'MISSED'})")


def spread(ts: Timing) -> str:
    """'min-max' of a timing's rounds in ms."""
    return f"{min(ts.rounds) * 1e3:.2f}-{max(ts.rounds) * 1e3:.2f} ms"


#: Seconds to sleep before each candidate's round, which then starts with one untimed call
#: (``--settle``, default 0.2; 0: neither, as the first round of issue 12 measured). Between two
#: libraries' rounds this lets the first one's idle threads park: OpenBLAS's keep spinning for up to
#: ~0.1 s after a threaded product and, without a pause, take a CPU from the next candidate's round
#: (torch's MLP step measured 8.6-9.3 ms right after dlcore's, 4.7 ms alone).
SETTLE = 0.2


def _settle_seconds(text: str) -> float:
    global SETTLE
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected --settle >= 0 seconds, got {text}")
    SETTLE = value
    return value


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, warmup: int = 2, inner: int = 1) -> dict[str, Timing]:
    """Median times with the candidates alternating inside each round (each round: ``inner`` calls of one,
    then of the next), so that load from other processes hits every candidate alike; with ``SETTLE``
    (``--settle``) a pause and one untimed call before each candidate's round."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            if SETTLE > 0:
                time.sleep(SETTLE)                       # the other candidate's threads park
                fn()                                     # then one untimed call: this one's own steady state
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times[name].append((time.perf_counter() - t0) / inner)
    return {name: Timing(name, statistics.median(ts), ts) for name, ts in times.items()}


def add_common_arguments(parser: argparse.ArgumentParser, rounds: int) -> None:
    """--rounds, --runs, --contention and --threads, the same for every benchmark script."""
    parser.add_argument("--rounds", type=int, default=rounds, help="timed rounds per run (median taken)")
    parser.add_argument("--runs", type=int, default=1,
                        help="repeat the whole comparison this many times in this process (spread of the medians)")
    parser.add_argument("--contention", action="store_true",
                        help="also measure with a busy CPU-bound process running beside (quiet vs contended)")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit NumPy's BLAS (threadpoolctl) and torch to this many threads")
    parser.add_argument("--settle", type=_settle_seconds, default="0.2", metavar="SECONDS",
                        help="pause before each candidate's round (then one untimed call) so that the other's idle "
                             "BLAS/OpenMP threads stop spinning (0.2 is enough for OpenBLAS; 0 turns it off); "
                             "default 0.2")


@contextlib.contextmanager
def thread_limit(threads: int | None, torch: Any = None) -> Iterator[None]:
    """Limit NumPy's BLAS (threadpoolctl) and torch to ``threads`` threads inside the block (None: as is)."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads, user_api="blas"):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(before)


def compare(title: str, fns: dict[str, Callable[[], Any]], *, ours: str, ref: str | None, target: float | None,
            rounds: int, runs: int = 1, contention: bool = False, warmup: int = 2, inner: int = 1,
            ref_label: str = "reference") -> dict[str, Any]:
    """Time ``fns`` (dlcore's step ``ours`` and the reference ``ref``) ``runs`` times, interleaved, and print
    per run: both medians, the ratio ours/ref and the load average; then the median ratio and the spread
    over the runs. With ``contention`` the same again beside a busy process, and contended / quiet for each.

    Every run prints a machine-readable line ``RESULT <title> <mode> run=<i> ...`` (see README)."""
    out: dict[str, Any] = {"title": title, "quiet": [], "contended": []}
    modes = ["quiet"] + (["contended"] if contention else [])
    for mode in modes:
        ctx = busy_process() if mode == "contended" else contextlib.nullcontext()
        with ctx:
            if mode == "contended":
                print(f"[{title}] with one busy CPU-bound process beside (load average {load_average()})")
            for run in range(1, runs + 1):
                t = interleaved(fns, rounds, warmup=warmup, inner=inner)
                o = t[ours]
                r = t[ref] if ref is not None and ref in t else None
                ratio = o.median_s / r.median_s if r is not None else None
                load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
                rec = {"run": run, "ours_s": o.median_s, "ref_s": r.median_s if r else None, "ratio": ratio,
                       "ours_spread": spread(o), "load1": load}
                out[mode].append(rec)
                print(f"[{title}] {mode} run {run}: {o} (rounds {spread(o)})")
                if r is not None:
                    print(f"[{title}] {mode} run {run}: {r} (rounds {spread(r)})")
                    met = "" if target is None else ("met" if ratio <= target else "MISSED")
                    verdict = "" if target is None else f" (target <= {target:.2f}: {met})"
                    print(f"[{title}] {mode} run {run}: ratio dlcore / {ref_label} = {ratio:.2f}{verdict}")
                print(f"RESULT {title} {mode} run={run} dlcore_ms={o.median_s * 1e3:.2f} "
                      f"ref_ms={(r.median_s * 1e3) if r else float('nan'):.2f} "
                      f"ratio={ratio if ratio is not None else float('nan'):.3f} load1={load:.2f}")
    _summary(title, out, target, ref is not None)
    return out


def _summary(title: str, out: dict[str, Any], target: float | None, has_ref: bool) -> None:
    def med(recs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(rec[key] for rec in recs)

    for mode in ("quiet", "contended"):
        recs = out[mode]
        if not recs:
            continue
        ours = [rec["ours_s"] * 1e3 for rec in recs]
        line = (f"SUMMARY {title} {mode}: dlcore median {med(recs, 'ours_s') * 1e3:.2f} ms "
                f"(runs {min(ours):.2f}-{max(ours):.2f})")
        if has_ref:
            refs = [rec["ref_s"] * 1e3 for rec in recs]
            ratios = [rec["ratio"] for rec in recs]
            line += (f", reference median {med(recs, 'ref_s') * 1e3:.2f} ms (runs {min(refs):.2f}-{max(refs):.2f})"
                     f", ratio median {statistics.median(ratios):.2f} (runs {', '.join(f'{x:.2f}' for x in ratios)})")
            if target is not None:
                line += f" target <= {target:.2f}: {'met' if statistics.median(ratios) <= target else 'MISSED'}"
        loads = [rec["load1"] for rec in recs]
        line += f"; load average {min(loads):.2f}-{max(loads):.2f}"
        print(line)
    if out["contended"]:
        q, c = out["quiet"], out["contended"]
        slow = med(c, "ours_s") / med(q, "ours_s")
        line = (f"SUMMARY {title} contended/quiet: dlcore {slow:.2f}x "
                f"(target <= 2.00: {'met' if slow <= 2.0 else 'MISSED'})")
        if has_ref:
            line += f", reference {med(c, 'ref_s') / med(q, 'ref_s'):.2f}x"
        print(line)


def torch_or_none() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch
