"""dlcore.backend's fast paths (matmul with a per-product thread count, fused elementwise kernels) and
dlcore.blas_threads' rule: the fast paths give the numbers of the plain formulas they replace, on every
backend, and the thread rule picks, sets and restores thread counts as its docstring says."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore import backend, blas_threads
from dlcore.nn.functional import sigmoid_tanh


def _arr(a, xp):
    return backend.to_device(np.asarray(a), xp)


def _np(a):
    return backend.to_numpy(a)


# --------------------------------------------------------------------------- matmul


@pytest.mark.parametrize("shapes", [((5, 7), (7, 3)), ((4, 5, 6), (4, 6, 2)), ((3, 6), (6,)), ((2, 3, 4), (4, 5))])
def test_matmul_equals_the_operator(xp, rng, shapes):
    a, b = (rng.standard_normal(s).astype("float32") for s in shapes)
    got = backend.matmul(_arr(a, xp), _arr(b, xp))
    np.testing.assert_allclose(_np(got), a @ b, rtol=1e-5, atol=1e-6)


def test_matmul_writes_into_out_on_numpy(rng):
    a, b = rng.standard_normal((300, 200)).astype("float32"), rng.standard_normal((200, 100)).astype("float32")
    out = np.empty((300, 100), dtype="float32")
    assert backend.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-4)


class _FakeBlas:
    """A stand-in for a threadpoolctl controller that records every thread count set."""

    def __init__(self, threads: int) -> None:
        self.threads, self.history = threads, []

    def get_num_threads(self) -> int:
        return self.threads

    def set_num_threads(self, n: int) -> None:
        self.threads = n
        self.history.append(n)


def _policy(ceiling: int, *, free: float, min_flops: float = 1e6) -> tuple[blas_threads.ThreadPolicy, _FakeBlas]:
    policy = blas_threads.ThreadPolicy(min_flops=min_flops, adaptive=False)
    fake = _FakeBlas(ceiling)
    policy._controllers = [fake]
    policy.free_cpus = lambda: free
    return policy, fake


def test_small_products_run_on_one_thread_and_the_setting_is_restored():
    policy, fake = _policy(4, free=4.0)
    seen = []
    policy.run(0.5e6, lambda: seen.append(fake.threads))
    assert seen == [1] and fake.threads == 4 and fake.history == [1, 4]


def test_large_products_use_the_free_cpus_never_more_than_the_ceiling():
    policy, fake = _policy(4, free=4.0)
    seen = []
    policy.run(5e6, lambda: seen.append(fake.threads))
    assert seen == [4] and fake.history == []          # nothing to change
    policy.free_cpus = lambda: 2.2                      # another process holds ~1.8 CPUs
    policy.run(5e6, lambda: seen.append(fake.threads))
    assert seen == [4, 2] and fake.threads == 4
    policy.free_cpus = lambda: 16.0                     # more CPUs free than the BLAS is allowed
    policy.run(5e6, lambda: seen.append(fake.threads))
    assert seen == [4, 2, 4]


def test_a_limit_set_by_the_user_is_never_exceeded():
    policy, fake = _policy(1, free=8.0)                 # e.g. OPENBLAS_NUM_THREADS=1 or threadpool_limits(1)
    seen = []
    policy.run(1e9, lambda: seen.append(fake.threads))
    assert seen == [1] and fake.history == []


def test_the_setting_is_restored_when_the_product_raises():
    policy, fake = _policy(2, free=2.0)

    def boom():
        raise ValueError("shapes")

    with pytest.raises(ValueError, match="shapes"):
        policy.run(10.0, boom)
    assert fake.threads == 2


def test_free_cpus_counts_other_processes_from_proc(monkeypatch):
    policy = blas_threads.ThreadPolicy(adaptive=True, window=0.0)
    policy._cpus, policy._tick = 2, 100
    readings = iter([(1000, 500), (1000 + 150, 500 + 50)])   # 150 busy ticks, 50 of them ours
    clock = iter([10.0, 11.0])
    monkeypatch.setattr(blas_threads, "_read_cpu_ticks", lambda: next(readings))
    monkeypatch.setattr(blas_threads, "_clock", lambda: next(clock))
    assert policy.free_cpus() == 2.0                   # first reading: nothing to compare with yet
    assert policy.free_cpus() == pytest.approx(1.0)    # others used 100 ticks = 1 CPU over 1 s
    monkeypatch.setattr(blas_threads, "_clock", lambda: 11.5)
    policy.window = 10.0                                # within the window: the last reading is reused
    assert policy.threads_for(1e9, 2) == 1
    assert policy.threads_for(1e3, 2) == 1


def test_without_proc_the_rule_falls_back_to_sizes(monkeypatch):
    policy = blas_threads.ThreadPolicy(adaptive=True, window=0.0)
    monkeypatch.setattr(blas_threads, "_read_cpu_ticks", lambda: None)
    assert policy.free_cpus() == float(policy._cpus) and policy.adaptive is False


def test_configure_checks_its_arguments():
    with pytest.raises(ValueError, match="min_flops >= 0"):
        blas_threads.configure(min_flops=-1)
    with pytest.raises(ValueError, match="window > 0"):
        blas_threads.configure(window=0)


def test_describe_names_the_rule():
    text = backend.thread_policy()
    assert "thread" in text


# --------------------------------------------------------------------------- fused elementwise kernels


def test_relu_forward_and_mask_multiply_match_the_formula(xp, rng):
    x = rng.standard_normal((6, 7)).astype("float32")
    x[0, 0], x[1, 1] = np.nan, 0.0
    dy = rng.standard_normal((6, 7)).astype("float32")
    y, mask = backend.relu_forward(_arr(x, xp))
    want_mask = (x > 0).astype("float32")
    np.testing.assert_array_equal(_np(y), x * want_mask)            # NaN stays NaN, 0 at x = 0
    np.testing.assert_array_equal(_np(backend.mask_multiply(_arr(dy, xp), mask)), dy * want_mask)


def test_relu_and_relu_backward_match_the_formula(xp, rng):
    x = rng.standard_normal((6, 7)).astype("float32")
    x[0, 0], x[1, 1], x[2, 2] = np.nan, 0.0, -0.0
    dy = rng.standard_normal((6, 7)).astype("float32")
    dy[3, 3] = np.inf
    y = backend.relu(_arr(x, xp))
    want_mask = (x > 0).astype("float32")
    np.testing.assert_array_equal(_np(y), x * want_mask)            # NaN stays NaN, 0 at x <= 0
    assert backend.dtype_name(y.dtype) == "float32"
    dx = backend.relu_backward(_arr(dy, xp), y)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(_np(dx), dy * want_mask)      # 0 at a NaN input, inf · 0 = NaN as before
    assert backend.dtype_name(dx.dtype) == "float32"


def test_mask_multiply_accepts_a_bool_mask_on_every_backend(xp, rng):
    dy = rng.standard_normal((4, 5))
    m = rng.random((4, 5)) < 0.5
    np.testing.assert_array_equal(_np(backend.mask_multiply(_arr(dy, xp), _arr(m, xp))), dy * m)


@pytest.mark.parametrize("size", [10, 100_003])
def test_add_scaled_has_the_roundings_of_the_plain_update(xp, rng, size):
    w = rng.standard_normal(size).astype("float32")
    g = rng.standard_normal(size).astype("float32")
    want = w.copy()
    want += -0.01 * g
    got = backend.add_scaled(_arr(w, xp), -0.01, _arr(g, xp))
    np.testing.assert_array_equal(_np(got), want)


def test_add_scaled_updates_numpy_arrays_in_place(rng):
    w = rng.standard_normal((300, 400)).astype("float32")
    g = rng.standard_normal((300, 400)).astype("float32")
    assert backend.add_scaled(w, 0.5, g) is w


def test_sigmoid_in_place_has_the_roundings_of_sigmoid_tanh(xp, rng):
    z = (rng.standard_normal((5, 9)) * 10).astype("float32")
    want = _np(sigmoid_tanh(_arr(z, xp)))
    np.testing.assert_array_equal(_np(backend.sigmoid_(_arr(z.copy(), xp))), want)


def test_maximum_in_place(xp, rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    np.testing.assert_array_equal(_np(backend.maximum_(_arr(a.copy(), xp), _arr(b, xp))), np.maximum(a, b))


def test_bernoulli_draws_the_same_samples_as_the_plain_comparison(xp):
    p = np.random.default_rng(3).random((50, 40)).astype("float32")
    u = np.random.default_rng(7).random((50, 40)).astype("float32")
    got = backend.bernoulli(np.random.default_rng(7), _arr(p, xp))
    assert backend.dtype_name(got.dtype) == "float32"
    np.testing.assert_array_equal(_np(got), (u < p).astype("float32"))


# --------------------------------------------------------------------------- layer fast paths


def _maxpool_backward_loop(x, dy, k):
    """dL/dx of a k x k, stride-k max-pooling, window by window: all of dy to the first maximum."""
    dx = np.zeros_like(x)
    n, c, oh, ow = dy.shape
    for b, ch, p, q in np.ndindex(n, c, oh, ow):
        window = x[b, ch, p * k:p * k + k, q * k:q * k + k]
        i, j = np.unravel_index(np.argmax(window), window.shape)       # argmax: the first maximum
        dx[b, ch, p * k + i, q * k + j] += dy[b, ch, p, q]
    return dx


@pytest.mark.parametrize("size", [8, 9])          # 9: the last row and column are in no window
def test_maxpool_backward_writes_each_share_into_place_as_the_loop_does(xp, rng, size):
    from dlcore.nn.pooling import MaxPool2D

    x = np.maximum(rng.standard_normal((3, 2, size, size)), 0.0).astype("float32")   # ties: zeros
    x[0, 0, :2, :2] = 1.5                                                            # a window of four ties
    pool = MaxPool2D(2)
    y = pool.forward(_arr(x, xp))
    dy = rng.standard_normal(tuple(y.shape)).astype("float32")
    np.testing.assert_array_equal(_np(pool.backward(_arr(dy, xp))), _maxpool_backward_loop(x, dy, 2))


@pytest.mark.parametrize(("kernel", "stride", "padding"),
                         [(2, 2, 0), ((2, 1), 1, 0), ((1, 2), (1, 2), 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0))])
def test_maxpool_forward_over_rows_then_columns_equals_the_window_maximum(xp, rng, kernel, stride, padding):
    from dlcore.nn.im2col import pair
    from dlcore.nn.pooling import MaxPool2D

    x = rng.standard_normal((2, 3, 9, 10)).astype("float32")
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel, "k", "t"), pair(stride, "s", "t"), pair(padding, "p", "t", minimum=0)
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    oh, ow = (x_pad.shape[2] - kh) // sh + 1, (x_pad.shape[3] - kw) // sw + 1
    want = np.empty((2, 3, oh, ow), dtype="float32")
    for p, q in np.ndindex(oh, ow):
        want[:, :, p, q] = x_pad[:, :, p * sh:p * sh + kh, q * sw:q * sw + kw].max(axis=(2, 3))
    got = MaxPool2D(kernel, stride, padding).forward(_arr(x, xp))
    np.testing.assert_array_equal(_np(got), want)


@pytest.mark.parametrize(("stride", "padding", "block"), [(1, 0, 1 << 18), (1, 1, 50), ((2, 1), 0, 50), (2, 1, 50)])
def test_conv_dx_by_blocks_and_runs_equals_col2im_of_the_plain_product(xp, rng, monkeypatch, stride, padding, block):
    """Conv2D's channels-last dL/dx (image blocks of ``block`` entries, runs of KW C_in along the row
    when the width stride is 1) against col2im_loop(dY W_mat), the definition."""
    from dlcore.nn.conv import Conv2D
    from dlcore.nn.im2col import col2im_loop

    monkeypatch.setattr(Conv2D, "block_entries", block)                 # 50: blocks of one or two images
    x = rng.standard_normal((5, 3, 9, 8))
    conv = Conv2D(3, 4, 3, stride=stride, padding=padding, rng=1, dtype="float64", layout="rows").to(xp)
    y = conv.forward(_arr(x, xp))
    dy = rng.standard_normal(tuple(y.shape))
    dx = _np(conv.backward(_arr(dy, xp)))
    w_mat = _np(conv.params["W"]).reshape(4, -1)                         # (C_out, (c, i, j))
    dcol = dy.transpose(0, 2, 3, 1).reshape(-1, 4) @ w_mat
    want = col2im_loop(dcol, x.shape, 3, stride, padding)
    np.testing.assert_allclose(dx, want, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- the fused RBM step


@pytest.mark.parametrize("persistent", [True, False])
def test_rbm_step_equals_the_plain_formulas(xp, persistent):
    """The fused PCD/CD step (one product for p(h|v0) and p(h|vk), one for dW) against the textbook formulas,
    with the same random draws, in float64."""
    from dlcore.energy import RBM

    rng = np.random.default_rng(0)
    v0 = _arr((rng.random((6, 9)) < 0.5).astype("float64"), xp)
    rbm = RBM(9, 4, rng=1, dtype="float64").to(xp)
    p = {k: _np(v) for k, v in rbm.params.items()}
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    if persistent:
        rbm.cd_gradient(v0, persistent=True, rng=2)            # starts the chains
        p = {k: _np(v) for k, v in rbm.params.items()}
        h = _np(rbm.persistent_hidden)
        gen = np.random.default_rng(3)
        grads = rbm.cd_gradient(v0, persistent=True, rng=np.random.default_rng(3))
    else:
        gen = np.random.default_rng(3)
        h = _np(backend.bernoulli(gen, _arr(sig(_np(v0) @ p["W"] + p["c"]), np)))
        grads = rbm.cd_gradient(v0, rng=np.random.default_rng(3))
    vk = _np(backend.bernoulli(gen, sig(h @ p["W"].T + p["b"])))
    v0n = _np(v0)
    ph0, phk = sig(v0n @ p["W"] + p["c"]), sig(vk @ p["W"] + p["c"])
    np.testing.assert_allclose(_np(grads["W"]), vk.T @ phk / len(vk) - v0n.T @ ph0 / len(v0n), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(grads["b"]), vk.mean(0) - v0n.mean(0), atol=1e-12)
    np.testing.assert_allclose(_np(grads["c"]), phk.mean(0) - ph0.mean(0), atol=1e-12)


# --------------------------------------------------------------------------- passes split over threads


@pytest.fixture
def two_threads(monkeypatch):
    """dlcore's policy as on an idle 2-CPU machine with a 2-thread BLAS (a stand-in controller), splitting
    every pass; yields the stand-in, whose history shows the BLAS set to 1 thread inside a split pass."""
    fake = _FakeBlas(2)
    monkeypatch.setattr(blas_threads.POLICY, "_controllers", [fake])
    monkeypatch.setattr(blas_threads.POLICY, "free_cpus", lambda: 2.0)
    monkeypatch.setattr(blas_threads.POLICY, "min_entries", 1)
    monkeypatch.setattr(blas_threads.POLICY, "pass_memory", 1e9)      # "recently" never runs out in a test
    return fake


def _layer_results(rng):
    from dlcore.nn.conv import Conv2D
    from dlcore.nn.pooling import MaxPool2D

    x = np.maximum(rng.standard_normal((6, 3, 12, 12)), 0.0).astype("float32")    # ties: zeros after ReLU
    conv, pool = Conv2D(3, 4, 3, rng=1, layout="rows"), MaxPool2D(2)
    y, mask = backend.relu_forward(conv.forward(x))
    p = pool.forward(y)
    dp = rng.standard_normal(p.shape).astype("float32")
    dy = backend.mask_multiply(pool.backward(dp), mask)
    r = backend.relu(x - 0.5)
    dr = backend.relu_backward(x, r)
    blas_threads.parallel_chunks(2, lambda lo, hi: None, 10**9)               # a split pass: the update follows
    g = np.cos(np.arange(100_003, dtype="float32"))
    w = backend.add_scaled(np.linspace(-1, 1, 100_003, dtype="float32"), -0.01, g, block=1000)
    per_image = Conv2D(3, 4, 3, rng=2, layout="images")          # stacks of small products (batched matmul)
    z = per_image.forward(x)
    dz = per_image.backward(np.ones_like(z))
    return [y, p, dy, conv.backward(dy), conv.grads["W"], backend.copy_into(np.empty_like(x), x), z, dz,
            per_image.grads["W"], r, dr, w]


def test_split_passes_give_identical_results(two_threads, monkeypatch):
    splits = []
    chunk_threads = blas_threads.POLICY.chunk_threads
    monkeypatch.setattr(blas_threads.POLICY, "chunk_threads", lambda *a: splits.append(chunk_threads(*a)) or splits[-1])
    monkeypatch.setattr(blas_threads.POLICY, "min_entries", 10**12)            # nothing split
    serial = _layer_results(np.random.default_rng(5))
    assert splits and set(splits) == {1}
    n_serial = len(splits)
    monkeypatch.setattr(blas_threads.POLICY, "min_entries", 1)                 # everything split
    parallel = _layer_results(np.random.default_rng(5))
    # passes were split (those nested inside a block run serially) and the BLAS setting is back
    assert splits[n_serial:].count(2) >= 5 and two_threads.threads == 2
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shapes", [((300, 200), (200, 100)), ((7, 300), (300, 5)), ((60, 80), (80, 500))])
def test_a_product_split_by_rows_over_own_threads_equals_one_call(two_threads, monkeypatch, rng, shapes):
    monkeypatch.setattr(blas_threads.POLICY, "min_flops", 0.0)                # split even the small one
    a, b = (rng.standard_normal(s).astype("float32") for s in shapes)
    want = a @ b
    flops = 2.0 * a.shape[0] * a.shape[1] * b.shape[1]
    monkeypatch.setattr(blas_threads.POLICY, "_last_pass", float("-inf"))
    assert blas_threads.POLICY.product_threads(flops, a.shape[0]) == 1        # no split pass lately: the BLAS's
    monkeypatch.setattr(blas_threads.POLICY, "pass_memory", 1e9)              # (no dependence on the clock)
    blas_threads.parallel_chunks(4, lambda lo, hi: None, 10**9)               # a split pass ran
    assert blas_threads.POLICY.product_threads(flops, a.shape[0]) == 2        # now dlcore's threads
    # rows of a, or columns of b when b has more (the third shape)
    got = backend.matmul(a, b)
    # the same dot products; the BLAS may take another kernel for a block's edge rows: round-off apart
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    out = np.empty_like(want)
    assert backend.matmul(np.asfortranarray(a), b, out=out) is out     # a column-major a, the result in out
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    assert 1 in two_threads.history and two_threads.threads == 2         # one BLAS thread inside, then restored
    assert blas_threads.POLICY.product_threads(1e12, 300, own_threads=False) == 1
    blas_threads.configure(own_threads=False)
    try:
        assert blas_threads.POLICY.product_threads(1e12, 300) == 1
    finally:
        blas_threads.configure(own_threads=True)


def test_a_following_pass_splits_only_while_others_do_and_is_not_counted(two_threads, monkeypatch):
    blocks = []
    monkeypatch.setattr(blas_threads.POLICY, "_last_pass", float("-inf"))
    blas_threads.parallel_chunks(4, lambda lo, hi: blocks.append((lo, hi)), 10**9, follow=True)
    assert blocks == [(0, 4)] and not blas_threads.POLICY.splitting()       # serial, and not counted
    blas_threads.parallel_chunks(4, lambda lo, hi: None, 10**9)              # an ordinary split pass
    assert blas_threads.POLICY.splitting()
    blas_threads.parallel_chunks(4, lambda lo, hi: blocks.append((lo, hi)), 10**9, follow=True)
    assert sorted(blocks[1:]) == [(0, 2), (2, 4)]


def test_an_error_in_a_block_is_raised_after_every_block_finished(two_threads):
    done = []

    def fn(lo, hi):
        done.append((lo, hi))
        if lo > 0:
            raise RuntimeError("block failed")

    with pytest.raises(RuntimeError, match="block failed"):
        blas_threads.parallel_chunks(10, fn, 10**9)
    assert sorted(done) == [(0, 5), (5, 10)] and two_threads.threads == 2
    blas_threads.parallel_chunks(4, lambda lo, hi: done.append((lo, hi)), 10**9)   # usable again
    assert sorted(done[2:]) == [(0, 2), (2, 4)]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="os.fork is POSIX-only")
def test_a_forked_child_can_split_passes(two_threads):
    import os

    blas_threads.parallel_chunks(4, lambda lo, hi: None, 10**9)          # the parent's pool exists now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                                          # the child: split a pass, report
        try:
            out = []
            blas_threads.parallel_chunks(4, lambda lo, hi: out.append((lo, hi)), 10**9)
            os.write(write, repr(sorted(out)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    assert report == "[(0, 2), (2, 4)]"
