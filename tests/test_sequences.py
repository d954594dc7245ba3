"""Generated sequence tasks: sine waves and digit addition (the Reber grammar has its own file)."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.data.sequences import ADDITION_VOCAB, addition_data, decode, sine_waves


def test_sine_waves_predict_the_next_value():
    xs, ys = sine_waves(4, 30, rng=0)
    assert xs.shape == ys.shape == (4, 30, 1) and xs.dtype == np.float32
    np.testing.assert_allclose(xs[:, 1:], ys[:, :-1], atol=1e-7)     # without noise, y_t = x_{t+1}
    assert np.all(np.abs(xs) <= 1.0)
    noisy, clean = sine_waves(4, 30, rng=0, noise=0.1)
    np.testing.assert_array_equal(clean, ys)                        # same waves; the targets stay clean
    assert 0.05 < np.std(noisy - xs) < 0.2
    np.testing.assert_array_equal(sine_waves(2, 5, rng=3)[0], sine_waves(2, 5, rng=3)[0])
    with pytest.raises(ValueError, match="positive"):
        sine_waves(0, 5)


@pytest.mark.parametrize("reverse", [False, True])
def test_addition_data_encodes_correct_sums(reverse):
    questions, answers = addition_data(200, digits=3, rng=1, reverse=reverse)
    assert questions.shape == (200, 7) and answers.shape == (200, 5)
    assert np.all(answers[:, 0] == ADDITION_VOCAB.index("_"))
    for q, a in zip(decode(questions), decode(answers), strict=True):
        q = q[::-1] if reverse else q
        left, right = q.strip().split("+")
        assert a.startswith("_") and int(a[1:].strip()) == int(left) + int(right)
        assert len(left) <= 3 and len(right) <= 3
    with pytest.raises(ValueError, match="positive"):
        addition_data(5, digits=0)
