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

Threads are set through ``threadpoolctl`` (a dependency of the library). Without it, or with a BLAS it
cannot control (Apple Accelerate), products run with the BLAS's own setting.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

__all__ = ["ThreadPolicy", "POLICY", "configure", "describe"]

#: Products below this many floating-point operations (2 m k n) run on one thread.
DEFAULT_MIN_FLOPS = 4_000_000
#: Seconds between two readings of the machine's load.
DEFAULT_WINDOW = 0.25

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
                 window: float = DEFAULT_WINDOW) -> None:
        self.min_flops, self.adaptive, self.window = float(min_flops), bool(adaptive), float(window)
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

    def describe(self) -> str:
        ctl = self.controllers
        if not ctl:
            return "BLAS threads not controlled (threadpoolctl missing or the BLAS unsupported)"
        load = ("adaptive to other processes' load (Linux /proc)" if self.adaptive
                else "not adaptive to load")
        return (f"1 thread below {self.min_flops:.3g} flop per product, else up to {self.ceiling()} "
                f"(the BLAS setting), {load}; {self.free_cpus():.1f} of {self._cpus} CPUs free now")


POLICY = ThreadPolicy()


def configure(*, min_flops: float | None = None, adaptive: bool | None = None, window: float | None = None) -> None:
    """Change the rule: the size threshold (``min_flops``; 0 lets every product use the BLAS's threads),
    whether the load of other processes is watched (``adaptive``), and how often (``window`` seconds)."""
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
