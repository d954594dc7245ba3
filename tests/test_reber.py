"""The embedded Reber grammar: the generator against an independent acceptor, the legal-next sets, and an
LSTM that learns next-symbol prediction including the long-range dependency."""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict

import numpy as np
import pytest

from dlcore.data.sequences import (
    REBER_SYMBOLS,
    embedded_reber_strings,
    next_symbol_data,
    reber_legal_next,
    reber_string,
)

try:  # a dev dependency; small models gain nothing from BLAS threads and lose a lot on a busy machine
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


def _one_blas_thread():
    return contextlib.nullcontext() if threadpool_limits is None else threadpool_limits(1, user_api="blas")


# Reber's automaton written independently as a regular expression. From the state after the upper X,
# the loop X T* V P returns to it, and S or X T* V V leads to the final E.
_TAIL = "(?:XT*VP)*(?:S|XT*VV)"
REBER = re.compile(f"^B(?:TS*X{_TAIL}|PT*V(?:V|P{_TAIL}))E$")
EMBEDDED = re.compile(f"^B([TP]){REBER.pattern[1:-1]}\\1E$")


def test_generated_strings_are_accepted_and_cover_the_grammar():
    strings = embedded_reber_strings(2000, rng=0)
    assert all(EMBEDDED.match(s) for s in strings)
    assert {s[1] for s in strings} == {"T", "P"}
    inner = [s[2:-2] for s in strings]
    assert all(REBER.match(s) for s in inner)
    assert {s[:2] for s in inner} == {"BT", "BP"}
    assert any("XX" in s for s in inner) and any("VPX" in s for s in inner)  # both cross-over edges
    assert all(REBER.match(reber_string(rng=k)) for k in range(50))
    assert embedded_reber_strings(5, rng=3) == embedded_reber_strings(5, rng=3)
    assert max(len(s) for s in embedded_reber_strings(300, rng=1, max_length=15)) <= 15


def test_acceptor_rejects_broken_strings():
    """The acceptor (the test's oracle) and reber_legal_next both reject corrupted strings."""
    good = "BTBPTVPXVVETE"
    assert EMBEDDED.match(good)
    for bad in ("BTBPTVPXVVEPE", "BTBPTVPXVETE", "BTBPTVPSVVETE", "BTBPTVPXVVET", "TBPTVPXVVETE"):
        assert not EMBEDDED.match(bad)
        with pytest.raises(ValueError, match="not an embedded Reber string"):
            reber_legal_next(bad)


def test_legal_next_sets_match_what_the_generator_does():
    """For every prefix seen often, the symbols that follow it in samples are exactly the legal set."""
    strings = embedded_reber_strings(4000, rng=1)
    seen, claimed = defaultdict(set), {}
    counts = defaultdict(int)
    for s in strings:
        sets = reber_legal_next(s)
        assert len(sets) == len(s) - 1
        for k, allowed in enumerate(sets):
            assert s[k + 1] in allowed
            prefix = s[:k + 1]
            seen[prefix].add(s[k + 1])
            counts[prefix] += 1
            assert claimed.setdefault(prefix, allowed) == allowed
    common = [p for p in counts if counts[p] >= 40]
    assert len(common) > 30
    for prefix in common:
        assert seen[prefix] == set(claimed[prefix]), prefix
    # the long-range dependency: after the inner E, only the second symbol is legal
    s = "BPBTXSEPE"
    assert reber_legal_next(s)[-2] == {"P"} and reber_legal_next(s)[0] == {"T", "P"}


def test_next_symbol_data_layout():
    strings = ["BTBTXSETE", "BPBPVPXVVEPE"]
    data = next_symbol_data(strings)
    assert data.xs.shape == data.ts.shape == (2, 11) and data.legal.shape == (2, 11, 7)
    np.testing.assert_array_equal(data.lengths, [8, 11])
    ids = {c: i for i, c in enumerate(REBER_SYMBOLS)}
    assert list(data.ts[0, :8]) == [ids[c] for c in strings[0][1:]]
    assert np.all(data.ts[0, 8:] == -1) and not data.legal[0, 8:].any()
    assert data.legal[1, 9].tolist() == [c == "P" for c in REBER_SYMBOLS]
    with pytest.raises(ValueError, match="pad_to"):
        next_symbol_data(strings, pad_to=5)


@pytest.mark.slow
def test_lstm_learns_embedded_reber_next_symbol():
    """An LSTM trained on next-symbol prediction picks a legal next symbol at ≥ 99% of held-out positions."""
    from dlcore.nn.container import Sequential
    from dlcore.nn.embedding import Embedding
    from dlcore.nn.lstm import LSTM
    from dlcore.nn.time_layers import TimeAffine, TimeSoftmaxCrossEntropy
    from dlcore.optim import Adam

    gen = np.random.default_rng(0)
    test = next_symbol_data(embedded_reber_strings(500, gen))
    model = Sequential(Embedding(7, 8, init="lecun", rng=gen), LSTM(8, 16, forget_bias=1.0, rng=gen),
                       TimeAffine(16, 7, rng=gen))
    loss, opt = TimeSoftmaxCrossEntropy(), Adam(lr=0.01)
    real = test.ts >= 0
    last = np.zeros_like(real)                          # the position that predicts the repeated T/P
    last[np.arange(len(real)), test.lengths - 2] = True

    def legal_rate(mask):
        pred = model.forward(test.xs).argmax(-1)
        ok = np.take_along_axis(test.legal, pred[..., None], axis=-1)[..., 0]
        return float(ok[mask].mean())

    rate = 0.0
    with _one_blas_thread():
        for step in range(1, 1201):
            batch = next_symbol_data(embedded_reber_strings(32, gen, max_length=30))
            loss.forward(model.forward(batch.xs), batch.ts)
            model.backward(loss.backward())
            opt.update(model.params, model.grads)
            if step % 100 == 0:
                rate = legal_rate(real)
                if rate >= 0.995:
                    break
    assert rate >= 0.99, f"legal next-symbol rate {rate:.4f} after {step} steps"
    assert legal_rate(last) >= 0.95, "the long-range dependency (repeat the second symbol) was not learned"
