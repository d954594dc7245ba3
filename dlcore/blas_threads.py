"""How many BLAS threads one NumPy matrix product gets: chosen per product size and per machine load.

OpenBLAS (NumPy's BLAS on every OS) splits each product over all its threads and then keeps its
idle threads spinning. That is right for one big product on an otherwise idle machine and wrong
in two common cases:

- small products (an LSTM step's (64, 256) x (256, 1024), a 20-filter convolution per image):
  the hand-over costs as much as the work;
- another busy process on the cores (a browser, a second grading worker): the thread that shares a
  core with it is descheduled for a whole time slice while the others wait for it at the end of every
  product, and the spinning threads take time from the main thread (an LSTM step was 11x slower).

So each product dlcore computes through :func:`dlcore.backend.matmul` runs with

    threads = 1                              if 2 m k n < min_flops (per matrix of a batched product)
            = min(ceiling, free CPUs)        otherwise,

where ``ceiling`` is the thread count the BLAS has when the product starts (what the user or
``OPENBLAS_NUM_THREADS`` / ``threadpoolctl`` set: never exceeded, and restored right after the
product), and ``free CPUs`` = CPUs − (CPU time other processes used over the last
``window`` seconds) / window, rounded, at least 1. The load of other processes is read from
``/proc/stat`` and ``/proc/self/stat`` at most once per ``window`` (Linux only; elsewhere only
the size rule applies). Thread counts change the order of floating-point sums inside the BLAS at
most, so results agree to round-off.

While dlcore is splitting elementwise passes (one ran within the last 0.1 s: a convolutional net), a
product that gets several threads is split in blocks over dlcore's own threads instead, each block a
single-threaded BLAS call (:func:`dlcore.backend.matmul`, ``own_threads``): OpenBLAS keeps its own
threads spinning for up to about 0.1 s after each threaded call, and they took the second CPU from
dlcore's split passes (a LeNet step on two threads burnt twice the CPU time of one, and ran no faster
than on one). Elsewhere (an MLP, whose passes are too small to split; the LSTM's time loop and the
RBM, which ask for it with ``own_threads=False``) the BLAS threads the product: its spinning threads
hand over quickest in a rapid sequence of products (an MLP step was 1.3x slower on dlcore's threads).

Threads are set through ``threadpoolctl`` (a dependency of the library). Without it, or with a BLAS it
cannot control (Apple Accelerate), products run with the BLAS's own setting.

Large elementwise passes over a batch (a ReLU or a pooling over 1.5 million entries, an im2col copy)
are split the same way: :func:`parallel_chunks` runs ``fn(lo, hi)`` on row blocks of the batch in
``min(ceiling, free CPUs)`` threads (NumPy releases the GIL inside its loops) when the pass touches
at least ``min_entries`` entries, with the BLAS set to one thread inside (each block's products are
then single-threaded, and two blocks run side by side). Every block computes exactly what the whole
pass would for its rows, so the results are identical, not only close. The BLAS's own thread count
is the ceiling for these threads too: with ``OPENBLAS_NUM_THREADS=1`` dlcore uses one core.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["ThreadPolicy", "POLICY", "configure", "describe", "parallel_chunks"]

#: Products below this many floating-point operations (2 m k n) run on one thread.
DEFAULT_MIN_FLOPS = 4_000_000
#: Seconds between two readings of the machine's load.
DEFAULT_WINDOW = 0.25
#: Elementwise passes touching fewer entries than this stay on one thread.
DEFAULT_MIN_ENTRIES = 1 << 18
#: Split large 2-D products over dlcore's own threads (True: while dlcore splits passes, see
#: :meth:`ThreadPolicy.product_threads`) or always let the BLAS thread them (False).
DEFAULT_OWN_THREADS = True
#: Seconds after a split elementwise pass during which products use dlcore's own threads (about how
#: long OpenBLAS's threads keep spinning after a call).
DEFAULT_PASS_MEMORY = 0.1

_clock = time.monotonic


def _numpy_blas_controllers() -> list[Any]:
    """threadpoolctl controllers of the BLAS NumPy calls (the copy shipped inside NumPy's wheel, or the
    shared one of a conda environment); [] without threadpoolctl or with a BLAS it cannot control."""
    try:
        import numpy as np
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return []
    np.ones(1) @ np.ones(1)                                        # make sure NumPy's BLAS is loaded
    blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    # the wheel's copy lives in numpy.libs/ (Linux, Windows) or numpy/.dylibs/ (macOS)
    ours = [c for c in blas if "numpy" in os.sep.join(os.path.normcase(c.filepath or "").split(os.sep)[-3:-1])]
    return ours or blas


def _read_cpu_ticks() -> tuple[int, int] | None:
    """(busy ticks of the whole machine, ticks of this process), from /proc; None where /proc is missing."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()[1:]
        with open("/proc/self/stat", "rb") as f:
            own = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # user nice system idle iowait irq softirq steal: busy = all but idle and iowait
    busy = sum(int(v) for v in fields[:8]) - int(fields[3]) - int(fields[4])
    return busy, int(own[11]) + int(own[12])                       # utime + stime of every thread of ours


class ThreadPolicy:
    """The rule of the module docstring; one instance, :data:`POLICY`, is used by dlcore."""

    def __init__(self, min_flops: float = DEFAULT_MIN_FLOPS, adaptive: bool = True,
                 window: float = DEFAULT_WINDOW, min_entries: int = DEFAULT_MIN_ENTRIES,
                 own_threads: bool = DEFAULT_OWN_THREADS) -> None:
        self.min_flops, self.adaptive, self.window = float(min_flops), bool(adaptive), float(window)
        self.min_entries, self.own_threads = int(min_entries), bool(own_threads)
        self.pass_memory = DEFAULT_PASS_MEMORY
        self._last_pass = float("-inf")                  # when a split elementwise pass last ran
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._busy = False                               # a parallel pass is running (no nesting)
        self._controllers: list[Any] | None = None
        self._cpus = os.cpu_count() or 1
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last: tuple[float, int, int] | None = None
        self._free = float(self._cpus)
        self._lock = threading.Lock()

    # -- the BLAS ------------------------------------------------------------------------------
    @property
    def controllers(self) -> list[Any]:
        if self._controllers is None:
            self._controllers = _numpy_blas_controllers()
        return self._controllers

    def ceiling(self) -> int:
        """The BLAS's own thread count right now (1 when it cannot be controlled)."""
        ctl = self.controllers
        return ctl[0].get_num_threads() if ctl else 1

    def _set(self, n: int) -> None:
        for c in self.controllers:
            c.set_num_threads(n)

    # -- the machine's load --------------------------------------------------------------------
    def free_cpus(self) -> float:
        """CPUs left over by other processes over the last window (all CPUs when that cannot be read)."""
        if not self.adaptive:
            return float(self._cpus)
        now = _clock()
        last = self._last
        if last is not None and now - last[0] < self.window:
            return self._free
        with self._lock:
            ticks = _read_cpu_ticks()
            if ticks is None:
                self.adaptive = False
                return float(self._cpus)
            if last is not None and now > last[0]:
                others = ((ticks[0] - last[1]) - (ticks[1] - last[2])) / self._tick / (now - last[0])
                self._free = min(float(self._cpus), max(1.0, self._cpus - max(others, 0.0)))
            self._last = (now, ticks[0], ticks[1])
        return self._free

    # -- the rule ------------------------------------------------------------------------------
    def threads_for(self, flops: float, ceiling: int) -> int:
        """Threads for one product of ``flops`` (per matrix) when the BLAS is set to ``ceiling`` threads."""
        if ceiling <= 1 or flops < self.min_flops:
            return 1
        return max(1, min(ceiling, int(self.free_cpus() + 0.5)))

    def run(self, flops: float, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` (a BLAS call) with the thread count of :meth:`threads_for`, then the
        BLAS's setting back as it was."""
        ctl = self.controllers
        if not ctl:
            return fn(*args, **kwargs)
        ceiling = ctl[0].get_num_threads()
        want = self.threads_for(flops, ceiling)
        if want == ceiling:
            return fn(*args, **kwargs)
        self._set(want)
        try:
            return fn(*args, **kwargs)
        finally:
            self._set(ceiling)

    def product_threads(self, flops: float, rows: int, own_threads: bool | None = None) -> int:
        """Threads for a product of ``flops`` to be split in ``rows`` blocks over dlcore's own threads
        (1: do not split; :meth:`run` then chooses the BLAS's threads). ``own_threads``: True to split,
        False never to split, None (the default of :func:`dlcore.backend.matmul`): split while dlcore is
        splitting elementwise passes too, i.e. one ran within the last ``pass_memory`` seconds (a
        convolutional net), where the BLAS's spinning threads would take the CPU those passes want;
        otherwise (an MLP: products with small passes in between) leave the threads to the BLAS, whose
        hand-over is quicker."""
        if own_threads is None:
            own = self.own_threads and self.splitting()
        else:
            own = own_threads
        if not own or self._busy or rows < 2:
            return 1
        ctl = self.controllers
        if not ctl:
            return 1
        return min(rows, self.threads_for(flops, ctl[0].get_num_threads()))

    def chunk_threads(self, rows: int, entries: int) -> int:
        """Threads for an elementwise pass over ``rows`` batch rows touching ``entries`` entries."""
        if self._busy or rows < 2 or entries < self.min_entries:
            return 1
        ceiling = self.ceiling()
        if ceiling <= 1:
            return 1
        return max(1, min(rows, ceiling, int(self.free_cpus() + 0.5)))

    def splitting(self) -> bool:
        """Whether dlcore split an elementwise pass over its threads within the last ``pass_memory`` seconds."""
        return _clock() - self._last_pass < self.pass_memory

    def parallel(self, rows: int, fn: Callable[[int, int], Any], entries: int, *, follow: bool = False) -> None:
        """``fn(lo, hi)`` over row blocks covering ``range(rows)``, in :meth:`chunk_threads` threads.
        ``follow``: split only while other passes are split (:meth:`splitting`), and do not count as one
        (an optimizer's update, which in an MLP would otherwise turn on own-thread products)."""
        threads = self.chunk_threads(rows, entries)
        if follow and not self.splitting():
            threads = 1
        self.blocks(rows, fn, threads)
        if threads > 1 and not follow:
            self._last_pass = _clock()

    def blocks(self, rows: int, fn: Callable[[int, int], Any], threads: int) -> None:
        """``fn(lo, hi)`` over ``threads`` row blocks covering ``range(rows)``, one per thread, with the BLAS
        set to one thread inside; ``fn(0, rows)`` as it is for ``threads`` <= 1 (or while another split
        pass runs: no nesting)."""
        if threads <= 1:
            fn(0, rows)
            return
        bounds = [(rows * k // threads, rows * (k + 1) // threads) for k in range(threads)]
        with self._lock:
            if self._busy:                               # another thread got here first: run serially
                threads = 0
            else:
                self._busy = True
                if self._pool is None or self._pool_size < threads - 1:
                    self._pool_size = max(threads - 1, self._cpus - 1)
                    self._pool = ThreadPoolExecutor(self._pool_size, thread_name_prefix="dlcore")
        if threads == 0:
            fn(0, rows)
            return
        ceiling = self.ceiling()
        self._set(1)
        try:
            futures = [self._pool.submit(fn, lo, hi) for lo, hi in bounds[1:]]
            try:
                fn(*bounds[0])
            finally:
                errors = [f.exception() for f in futures]    # wait for every block, even after an error
            for error in errors:
                if error is not None:
                    raise error
        finally:
            self._set(ceiling)
            self._busy = False

    def describe(self) -> str:
        ctl = self.controllers
        if not ctl:
            return "BLAS threads not controlled (threadpoolctl missing or the BLAS unsupported)"
        load = ("adaptive to other processes' load (Linux /proc)" if self.adaptive
                else "not adaptive to load")
        return (f"1 thread below {self.min_flops:.3g} flop per product, else up to {self.ceiling()} "
                f"(the BLAS setting); elementwise passes over >= {self.min_entries} entries split likewise; "
                f"{load}; {self.free_cpus():.1f} of {self._cpus} CPUs free now")


POLICY = ThreadPolicy()


def _after_fork_in_child() -> None:
    """A forked child (multiprocessing, a grading worker) inherits the pool object but none of its threads:
    start afresh, or its first split pass would wait forever for threads that do not exist."""
    POLICY._pool, POLICY._pool_size, POLICY._busy = None, 0, False
    POLICY._lock = threading.Lock()
    POLICY._last, POLICY._free = None, float(POLICY._cpus)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def configure(*, min_flops: float | None = None, adaptive: bool | None = None, window: float | None = None,
              min_entries: int | None = None, own_threads: bool | None = None) -> None:
    """Change the rule: the size threshold (``min_flops``; 0 lets every product use the BLAS's threads),
    whether the load of other processes is watched (``adaptive``), and how often (``window`` seconds),
    the size from which elementwise passes are split (``min_entries``; a huge number turns it off), and
    whether large products may be split over dlcore's threads while it splits passes (``own_threads=True``)
    or are always threaded by the BLAS itself (False)."""
    if own_threads is not None:
        POLICY.own_threads = bool(own_threads)
    if min_entries is not None:
        if min_entries < 0:
            raise ValueError(f"blas_threads.configure: expected min_entries >= 0, got {min_entries}")
        POLICY.min_entries = int(min_entries)
    if min_flops is not None:
        if min_flops < 0:
            raise ValueError(f"blas_threads.configure: expected min_flops >= 0, got {min_flops}")
        POLICY.min_flops = float(min_flops)
    if adaptive is not None:
        POLICY.adaptive = bool(adaptive)
        POLICY._last, POLICY._free = None, float(POLICY._cpus)
    if window is not None:
        if window <= 0:
            raise ValueError(f"blas_threads.configure: expected window > 0 seconds, got {window}")
        POLICY.window = float(window)


def describe() -> str:
    """One line: the rule in force and the CPUs it sees free now."""
    return POLICY.describe()


def parallel_chunks(rows: int, fn: Callable[[int, int], Any], entries: int, *, follow: bool = False) -> None:
    """Run ``fn(lo, hi)`` over row blocks covering ``range(rows)`` (see the module docstring); serially
    (``fn(0, rows)``) for small passes, a single CPU, a BLAS limited to one thread, or a busy machine;
    with ``follow``, also serially unless dlcore is splitting other passes (:meth:`ThreadPolicy.parallel`)."""
    POLICY.parallel(rows, fn, entries, follow=follow)
