"""Mini-batch iteration on every backend: coverage, seeded order, drop_last, devices."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore import backend
from dlcore.data import BatchIterator, batches


def _data(xp, n):
    # x row i = (i, -i), t_i = i: a batch is consistent iff xb[:, 0] == tb
    x = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float64)
    return backend.to_device(x, xp), backend.to_device(np.arange(n), xp)


def _epoch(it):
    xs, ts = [], []
    for xb, tb in it:
        xb, tb = backend.to_numpy(xb), backend.to_numpy(tb)
        np.testing.assert_array_equal(xb[:, 0], tb)
        xs.append(xb)
        ts.append(tb)
    return xs, ts


@pytest.mark.parametrize(("n", "bs", "sizes"), [(10, 3, [3, 3, 3, 1]), (9, 3, [3, 3, 3]), (1, 4, [1]), (5, 5, [5])])
def test_every_sample_once_per_epoch(xp, n, bs, sizes):
    x, t = _data(xp, n)
    it = batches(x, t, bs, rng=0)
    assert isinstance(it, BatchIterator) and len(it) == len(sizes)
    for _ in range(2):
        xs, ts = _epoch(it)
        assert [len(b) for b in ts] == sizes
        np.testing.assert_array_equal(np.sort(np.concatenate(ts)), np.arange(n))


def test_batches_stay_on_the_backend(xp):
    x, t = _data(xp, 7)
    for xb, tb in batches(x, t, 3, rng=1):
        assert backend.namespace(xb, tb) is xp
        assert xb.dtype == x.dtype and tb.dtype == t.dtype


def test_seeded_order_is_reproducible_and_changes_between_epochs(xp):
    x, t = _data(xp, 50)
    a, b = batches(x, t, 8, rng=3), batches(x, t, 8, rng=3)
    first_a, first_b = _epoch(a)[1], _epoch(b)[1]
    for ba, bb in zip(first_a, first_b, strict=True):
        np.testing.assert_array_equal(ba, bb)
    second_a = np.concatenate(_epoch(a)[1])
    assert not np.array_equal(np.concatenate(first_a), second_a)
    assert not np.array_equal(np.concatenate(first_a), np.arange(50))
    gen = np.random.default_rng(3)
    np.testing.assert_array_equal(np.concatenate(first_a), gen.permutation(50))


def test_no_shuffle_keeps_order(xp):
    x, t = _data(xp, 10)
    ts = _epoch(batches(x, t, 4, shuffle=False))[1]
    np.testing.assert_array_equal(np.concatenate(ts), np.arange(10))


def test_drop_last(xp):
    x, t = _data(xp, 10)
    it = batches(x, t, 3, rng=0, drop_last=True)
    assert len(it) == 3
    ts = _epoch(it)[1]
    assert [len(b) for b in ts] == [3, 3, 3]
    assert np.unique(np.concatenate(ts)).size == 9


def test_unlabelled_data_and_device_argument():
    x = np.arange(12.0).reshape(6, 2)
    out = list(batches(x, None, 4, rng=0, device="strict"))
    assert [b[1] for b in out] == [None, None]
    xp = backend.resolve("strict")
    assert all(backend.namespace(b[0]) is xp for b in out)
    np.testing.assert_array_equal(np.sort(np.concatenate([backend.to_numpy(b[0]) for b in out])[:, 0]), x[:, 0])


def test_bad_arguments():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="5 samples but t has shape"):
        batches(x, np.zeros(4), 2)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            batches(x, None, bad)
