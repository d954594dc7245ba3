"""Mini-batches: one pass over the data in (shuffled) slices of ``batch_size`` samples.

    for xb, tb in batches(x, t, 64, rng=0):      # one epoch
        ...

Each iteration over a :class:`BatchIterator` is one epoch; with ``shuffle=True`` every
epoch draws a new permutation from the iterator's generator (seeded once at
construction), so a run of epochs is reproducible from the seed. Batches are gathered
with ``xp.take`` on the arrays' own device (or on ``device`` when given).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

from dlcore import backend

__all__ = ["BatchIterator", "batches"]


class BatchIterator:
    """Iterable over mini-batches ``(xb, tb)`` of ``(x, t)``; ``len()`` is the number of batches per epoch.

    ``t`` may be None (unsupervised models): the batches are then ``(xb, None)``.
    """

    def __init__(self, x: Any, t: Any = None, batch_size: int = 32, *, shuffle: bool = True,
                 rng: backend.Seed = None, drop_last: bool = False, device: str | ModuleType | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batches: batch_size must be a positive integer, got {batch_size!r}")
        if not hasattr(x, "shape") or len(x.shape) < 1:
            raise TypeError(f"batches: expected x to be an array with a batch axis, got {type(x).__name__}")
        if t is not None and (not hasattr(t, "shape") or len(t.shape) < 1 or t.shape[0] != x.shape[0]):
            got = tuple(t.shape) if hasattr(t, "shape") else type(t).__name__
            raise ValueError(f"batches: x has {x.shape[0]} samples but t has shape {got}; expected the same first axis")
        if device is not None:
            x, t = backend.to_device(x, device), backend.to_device(t, device)
        self.xp = backend.namespace(x, t, where="batches")
        self.x, self.t = x, t
        self.n = int(x.shape[0])
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rng = backend.default_rng(rng)

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        xp = self.xp
        order = backend.permutation(self.rng, self.n, xp=xp) if self.shuffle else None
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, self.n)
            if order is None:
                yield self.x[lo:hi, ...], (None if self.t is None else self.t[lo:hi, ...])
            else:
                idx = order[lo:hi]
                yield xp.take(self.x, idx, axis=0), (None if self.t is None else xp.take(self.t, idx, axis=0))


def batches(x: Any, t: Any = None, batch_size: int = 32, shuffle: bool = True, rng: backend.Seed = None,
            drop_last: bool = False, device: str | ModuleType | None = None) -> BatchIterator:
    """Mini-batches ``(xb, tb)`` of ``(x, t)``: see :class:`BatchIterator`.

    ``rng``: seed or numpy Generator for the shuffling; ``drop_last``: skip a final short batch;
    ``device``: move the data there first (default: keep the arrays' own device).
    """
    return BatchIterator(x, t, batch_size, shuffle=shuffle, rng=rng, drop_last=drop_last, device=device)
