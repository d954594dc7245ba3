"""Chapter 4's check kinds (grader/trusted/plans/cnn.py, grader/kernel/records/cnn.py), without a kernel.

Every kind accepts the notebook's own solution (its answer cells, executed here) on several seeds and
rejects each prepared mistake with a message that names the cause. The grader's kernel-side layers, which
grade the network exercises, agree with dlcore's on random geometries.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from dlcore import nn
from grader import checks, kinds
from grader.course.release import REPO_ROOT
from grader.kernel import wire
from grader.kernel.records import cnn as records
from grader.trusted.messages import Verdict
from grader.trusted.plans import cnn as plans

NOTEBOOK = REPO_ROOT / "solutions" / "04_cnn" / "cnn.ipynb"
_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)


def _cells() -> tuple[str, dict[str, str]]:
    import nbformat

    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    setup, answers = "", {}
    for c in nb.cells:
        meta = c.metadata.get("nbgrader", {})
        if c.cell_type != "code":
            continue
        if meta.get("grade_id") == "ch4-setup":
            setup = "\n".join(line for line in c.source.splitlines() if not line.startswith("%"))
        elif meta.get("solution"):
            answers[meta["grade_id"]] = _MARKER.sub("", c.source)
    return setup, answers


SETUP, ANSWERS = _cells()


def solution(**changes: tuple[str, str]) -> dict:
    """The notebook's namespace after its answer cells, with ``cell_id=(old, new)`` text replacements."""
    ns: dict = {}
    exec(SETUP, ns)  # noqa: S102 - the course's own notebook
    for gid, code in ANSWERS.items():
        if gid in changes:
            old, new = changes[gid]
            assert old in code, f"{gid}: {old!r} not in the solution"
            code = code.replace(old, new)
        exec(code, ns)  # noqa: S102
    return ns


SOL = solution()


def verdict(kind: str, student, reference: str, **options) -> Verdict:
    k = kinds.find(kind)
    assert k is not None, f"no kind {kind}"
    with kinds._quiet():
        plan = k.plan(reference, **options)
        record = k.record(student, plan.inputs)
        # the record crosses a process boundary as JSON: judge what comes back from it
        return k.judge(plan, wire.decode(json.loads(json.dumps(wire.encode(record), allow_nan=False))))


def rejects(kind: str, student, reference: str, *words: str, **options) -> str:
    v = verdict(kind, student, reference, **options)
    assert not v.ok, f"{kind} accepted a wrong {reference}"
    for word in words:
        assert word in v.message, f"{word!r} not in:\n{v.message}"
    return v.message


IMAGE = [[0, 0, 1, 1, 0], [0, 1, 1, 0, 0], [1, 1, 0, 0, 1], [0, 1, 0, 1, 1], [0, 0, 1, 1, 0]]
KERNEL = [[1, 0, -1], [1, 0, -1], [0, 1, 0]]


# --------------------------------------------------------------------------- the kinds are found


def test_kinds_are_registered_and_helpers_exist():
    for kind in ("filter2d", "im2col", "col2im", "cnn_layer", "translation_invariance", "cnn_network",
                 "residual_block", "cnn_training"):
        assert kinds.find(kind) is not None, kind
        assert callable(getattr(checks, f"check_{kind}"))


# --------------------------------------------------------------------------- by hand


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_filter2d_accepts_the_solution(seed):
    shapes = [((6, 7), (3, 3)), ((5, 4), (2, 3)), ((4, 4), (1, 1))]
    for ref, fn in (("correlate", SOL["correlate2d"]), ("convolve", SOL["convolve2d"])):
        assert verdict("filter2d", fn, ref, cases=[(IMAGE, KERNEL)], shapes=shapes, seed=seed).ok


def test_filter2d_names_the_flip():
    wrong = solution(convolve2d=("return correlate2d(x, h[::-1, ::-1])", "return correlate2d(x, h)"))
    rejects("filter2d", wrong["convolve2d"], "convolve", "kernel is not flipped", "h[KH − 1 − p",
            cases=[(IMAGE, KERNEL)])
    wrong = solution(convolve2d=("return correlate2d(x, h[::-1, ::-1])", "return correlate2d(x, h[::-1, :])"))
    rejects("filter2d", wrong["convolve2d"], "convolve", "rows only", cases=[(IMAGE, KERNEL)])
    flipped = solution(correlate2d=("x[i:i + kh, j:j + kw] * h", "x[i:i + kh, j:j + kw] * h[::-1, ::-1]"))
    rejects("filter2d", flipped["correlate2d"], "correlate", "you flipped the kernel", cases=[(IMAGE, KERNEL)])


def test_filter2d_names_a_same_size_output():
    def same(x, h):
        out = np.zeros(np.shape(x))
        valid = SOL["correlate2d"](np.asarray(x), np.asarray(h))
        out[:valid.shape[0], :valid.shape[1]] = valid
        return out

    rejects("filter2d", same, "correlate", "input's size", "(H − KH + 1, W − KW + 1) = (3, 3)",
            cases=[(IMAGE, KERNEL)])


def test_filter2d_reports_warnings_and_mutation():
    def warns(x, h):
        return SOL["correlate2d"](x, h) + np.log(np.zeros(1))[0] * 0.0

    rejects("filter2d", warns, "correlate", "NumPy warned", "divide by zero", cases=[(IMAGE, KERNEL)])

    def mutates(x, h):
        x[0, 0] = 5.0
        return SOL["correlate2d"](x, h)

    rejects("filter2d", mutates, "correlate", "in place", cases=[(IMAGE, KERNEL)])


# --------------------------------------------------------------------------- im2col / col2im

GEOMETRIES = [((1, 1, 4, 4), 3, 3, 1, 0), ((2, 3, 5, 5), 3, 3, 2, 1), ((2, 2, 6, 5), 2, 3, 1, 2),
              ((1, 3, 7, 7), 3, 3, 3, 1)]


@pytest.mark.parametrize("seed", [0, 3])
def test_im2col_col2im_accept_the_solution(seed):
    v = verdict("im2col", SOL["im2col"], "dlcore.nn.im2col.im2col", cases=GEOMETRIES, seed=seed)
    assert v.ok and "⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩" in v.summary
    assert verdict("col2im", SOL["col2im"], "dlcore.nn.im2col.col2im", cases=GEOMETRIES, seed=seed).ok


def test_im2col_names_its_mistakes():
    last = solution(im2col=("col.transpose(0, 4, 5, 1, 2, 3)", "col.transpose(0, 4, 5, 2, 3, 1)"))
    rejects("im2col", last["im2col"], "dlcore.nn.im2col.im2col", "channels last", cases=GEOMETRIES)
    nopad = solution(im2col=("n, c, h, w = x.shape\n", "n, c, h, w = x.shape\n    pad = 0\n"))
    rejects("im2col", nopad["im2col"], "dlcore.nn.im2col.im2col", "padding pad=1 is ignored",
            cases=[((2, 3, 5, 5), 3, 3, 1, 1)])
    nostride = solution(im2col=("n, c, h, w = x.shape\n", "n, c, h, w = x.shape\n    stride = 1\n"))
    rejects("im2col", nostride["im2col"], "dlcore.nn.im2col.im2col", "stride 2 is ignored",
            cases=[((2, 3, 5, 5), 3, 3, 2, 0)])


def test_col2im_names_its_mistakes():
    padded = solution(col2im=("return dx[:, :, pad:pad + h, pad:pad + w]", "return dx"))
    rejects("col2im", padded["col2im"], "dlcore.nn.im2col.col2im", "padding is not removed",
            cases=[((2, 3, 5, 5), 3, 3, 2, 1)])
    assign = solution(col2im=("+= cols[:, :, i, j]", "= cols[:, :, i, j] + 0 * dx[:, :, i:i + stride * (oh - 1) + "
                                                       "1:stride, j:j + stride * (ow - 1) + 1:stride]"))
    # '=' per kernel offset: later offsets overwrite the earlier ones where windows overlap
    msg = rejects("col2im", assign["col2im"], "dlcore.nn.im2col.col2im", cases=[((1, 2, 5, 5), 3, 3, 1, 0)])
    assert "does not match" in msg


def test_col2im_adjoint_message():
    def scaled(col, x_shape, kh, kw, stride=1, pad=0):
        return SOL["col2im"](col, x_shape, kh, kw, stride, pad) * (1 + 1e-6)

    msg = rejects("col2im", scaled, "dlcore.nn.im2col.col2im", cases=[((2, 3, 5, 5), 3, 3, 2, 1)])
    assert "does not match" in msg or "adjoint" in msg


# --------------------------------------------------------------------------- Conv2D and pooling

CONV_CASES = [dict(args=(1, 2, 3), shapes=((2, 1, 5, 5),)),
              dict(args=(2, 3, 3), kwargs={"stride": 2, "padding": 1}, shapes=((2, 2, 7, 7),)),
              dict(args=(3, 4, 2), kwargs={"padding": 2}, shapes=((1, 3, 5, 6),)),
              dict(args=(2, 2, 3), kwargs={"stride": 3}, shapes=((3, 2, 8, 7),))]


@pytest.mark.parametrize("seed", [0, 5])
def test_cnn_layer_accepts_the_solution(seed):
    for case in CONV_CASES:
        v = verdict("cnn_layer", SOL["Conv2D"], "Conv2D", seed=seed, **case)
        assert v.ok, v.message
        assert "grader's im2col and col2im" in v.summary
    for name in ("MaxPool2D", "AvgPool2D"):
        for args, kwargs, shape in (((2,), {}, (2, 3, 4, 4)), ((3,), {"stride": 1}, (1, 2, 5, 6)),
                                    ((2,), {"padding": 1}, (2, 2, 5, 5))):
            assert verdict("cnn_layer", SOL[name], name, args=args, kwargs=kwargs, shapes=(shape,), seed=seed).ok


DW = 'self.grads["W"] = (dy_mat.T @ self.col).reshape(w.shape)'


@pytest.mark.parametrize(("old", "new", "words"), [
    (DW, DW + ".transpose(1, 0, 2, 3)", ["dW", "channel axes swapped", "do not transpose"]),
    (DW, DW + "[:, :, ::-1, ::-1]", ["dW", "rotated by 180°"]),
    (DW, 'self.grads["W"] = (self.col.T @ dy_mat).reshape(w.shape)', ["without transposing"]),
    ("y = self.col @ w.reshape(c_out, -1).T + b", "y = self.col @ w[:, :, ::-1, ::-1].reshape(c_out, -1).T + b",
     ["forward flips the kernel"]),
    ("return col2im(dy_mat @ w.reshape(c_out, -1),", "return col2im(dy_mat @ w[:, :, ::-1, ::-1].reshape(c_out, -1),",
     ["dx uses the kernel flipped"]),
    ('self.grads["b"] = dy.sum(axis=(0, 2, 3))', 'self.grads["b"] = dy.sum(axis=0)', ["db", "axis=(0, 2, 3)"]),
])
def test_conv2d_names_its_mistakes(old, new, words):
    wrong = solution(conv2d=(old, new))
    rejects("cnn_layer", wrong["Conv2D"], "Conv2D", *words, args=(2, 3, 3), kwargs={"stride": 2, "padding": 1},
            shapes=((2, 2, 7, 7),), seed=3)


def test_conv2d_is_graded_with_the_graders_im2col():
    broken = solution(col2im=("return dx[:, :, pad:pad + h, pad:pad + w]", "return dx"),
                      im2col=("return col.transpose(0, 4, 5, 1, 2, 3)", "return 2 * col.transpose(0, 4, 5, 1, 2, 3)"))
    v = verdict("cnn_layer", broken["Conv2D"], "Conv2D", args=(2, 3, 3), kwargs={"stride": 2, "padding": 1},
                shapes=((2, 2, 7, 7),), seed=3)
    assert v.ok, v.message
    assert broken["im2col"] is not records.k_im2col       # the student's own functions are back afterwards


def test_pooling_names_its_mistakes():
    every = solution(maxpool2d=("share = np.where(self.x_pad[:, :, rows, cols] == self.y, left, 0.0)",
                                "share = dy"))
    rejects("cnn_layer", every["MaxPool2D"], "MaxPool2D", "every cell of the window", args=(2,),
            shapes=((2, 3, 4, 4),))
    spread = solution(maxpool2d=("share = np.where(self.x_pad[:, :, rows, cols] == self.y, left, 0.0)",
                                 "share = dy / (self.k * self.k)"))
    rejects("cnn_layer", spread["MaxPool2D"], "MaxPool2D", "spreads dL/dy evenly", args=(2,), shapes=((2, 3, 4, 4),))
    no_div = solution(avgpool2d=("dx[:, :, rows, cols] += dy / (self.k * self.k)", "dx[:, :, rows, cols] += dy"))
    rejects("cnn_layer", no_div["AvgPool2D"], "AvgPool2D", "misses the factor 1/(KH·KW) = 1/4", args=(2,),
            shapes=((2, 3, 4, 4),))
    sums = solution(avgpool2d=("return y / (self.k * self.k)", "return y"))
    rejects("cnn_layer", sums["AvgPool2D"], "AvgPool2D", "forward sums the window", args=(2,), shapes=((2, 3, 4, 4),))


def test_cnn_layer_rejects_dlcores_own_layer():
    class Conv2D(nn.Conv2D):
        pass

    rejects("cnn_layer", Conv2D, "Conv2D", "uses dlcore's reference", "inherits from", args=(1, 2, 3),
            shapes=((2, 1, 5, 5),))


def test_delegation_to_dlcore_is_seen_in_the_kernel():
    from dlcore.nn.im2col import col2im as dl_col2im
    from dlcore.nn.im2col import im2col as dl_im2col

    def im2col(x, kh, kw, stride=1, pad=0):
        return dl_im2col(x, (kh, kw), stride, pad)

    def col2im(col, x_shape, kh, kw, stride=1, pad=0):
        return dl_col2im(col, x_shape, (kh, kw), stride, pad)

    rejects("im2col", im2col, "dlcore.nn.im2col.im2col", "calls dlcore's im2col", cases=GEOMETRIES[:2])
    rejects("col2im", col2im, "dlcore.nn.im2col.col2im", "calls dlcore's col2im", cases=GEOMETRIES[:2])

    class Conv2D:
        def __init__(self, *args, **kwargs):
            self.inner = nn.Conv2D(*args, dtype="float64", **kwargs)
            self.params, self.grads = self.inner.params, self.inner.grads

        def forward(self, x):
            return self.inner.forward(x)

        def backward(self, dy):
            return self.inner.backward(dy)

    rejects("cnn_layer", Conv2D, "Conv2D", "calls dlcore's Conv2D", args=(1, 2, 3), shapes=((2, 1, 5, 5),))


def test_cnn_layer_reports_warnings():
    warns = solution(conv2d=("self.grads[\"b\"] = dy.sum(axis=(0, 2, 3))",
                             "self.grads[\"b\"] = dy.sum(axis=(0, 2, 3)) + 0 * np.log(np.zeros(1))"))
    rejects("cnn_layer", warns["Conv2D"], "Conv2D", "NumPy warned", args=(1, 2, 3), shapes=((2, 1, 5, 5),))


# --------------------------------------------------------------------------- translation invariance

INV = dict(shapes=((2, 3, 6, 10), (1, 1, 8, 8)), shifts=(1, 2), pool=2)


@pytest.mark.parametrize("seed", [0, 4, 9])
def test_translation_invariance_accepts_the_solution(seed):
    v = verdict("translation_invariance", SOL["translation_invariance"], "translation_invariance", seed=seed, **INV)
    assert v.ok, v.message
    plan = plans.plan_translation_invariance(seed=seed, **INV)
    values = [c["value"] for c, i in zip(plan.expected["cases"], plan.inputs["cases"], strict=True)
              if i["shift"] == 1]
    assert all(0.2 < v < 0.9 for v in values), values       # one-pixel shifts: neither trivially 0 nor 1


@pytest.mark.parametrize(("old", "new", "word"), [
    ("shifted = np.zeros_like(x)\n    shifted[..., shift:] = x[..., :-shift]", "shifted = np.roll(x, shift, axis=-1)",
     "np.roll"),
    ("shifted[..., shift:] = x[..., :-shift]", "shifted[..., :-shift] = x[..., shift:]", "LEFT"),
    ("shifted[..., shift:] = x[..., :-shift]", "shifted[..., shift:, :] = x[..., :-shift, :]", "height axis"),
    ("a, b = pool(x), pool(shifted)", "a, b = x, shifted", "INPUT pixels"),
    ("return float(np.mean(a[active] == b[active]))", "return float(np.mean(a == b))", "stay zero"),
    ("return float(np.mean(a[active] == b[active]))", "return float(np.sum(a[active] == b[active]))", "count"),
])
def test_translation_invariance_names_its_mistakes(old, new, word):
    wrong = solution(translation_invariance=(old, new))
    rejects("translation_invariance", wrong["translation_invariance"], "translation_invariance", word, **INV)


# --------------------------------------------------------------------------- networks


@pytest.mark.parametrize("seed", [0, 4])
def test_networks_accept_the_solution(seed):
    assert verdict("cnn_network", SOL["LeNet"], "LeNet", kwargs={"c1": 4, "c2": 6}, shapes=((3, 1, 8, 8),),
                   seed=seed).ok
    v = verdict("residual_block", SOL["ResidualBlock"], "ResidualBlock", args=(2,), shapes=((2, 2, 5, 5),), seed=seed)
    assert v.ok and "numerical gradient" in v.summary, v.message


def test_networks_are_graded_with_the_graders_layers():
    broken = solution(conv2d=(DW, DW + ".T"), maxpool2d=("share = np.where(", "share = 2 * np.where("))
    assert verdict("cnn_network", broken["LeNet"], "LeNet", kwargs={"c1": 4, "c2": 6}, shapes=((3, 1, 8, 8),)).ok
    assert verdict("residual_block", broken["ResidualBlock"], "ResidualBlock", args=(2,), shapes=((2, 2, 5, 5),)).ok


def test_lenet_names_its_mistakes():
    order = solution(lenet=('L["ReLU"](), L["MaxPool2D"](2),\n                       L["Conv2D"](c1',
                            'L["MaxPool2D"](2), L["ReLU"](),\n                       L["Conv2D"](c1'))
    rejects("cnn_network", order["LeNet"], "LeNet", "layers are not the ones", "✗ layer 1", kwargs={"c1": 4, "c2": 6})
    own = solution(lenet=('L["Flatten"](), ', 'Flatten(), '))
    rejects("cnn_network", own["LeNet"], "LeNet", "not one built from `layers`", kwargs={"c1": 4, "c2": 6})
    forward_order = solution(lenet=("for layer in reversed(self.layers):", "for layer in self.layers:"))
    rejects("cnn_network", forward_order["LeNet"], "LeNet", "backward raised", kwargs={"c1": 4, "c2": 6})


@pytest.mark.parametrize(("old", "new", "word"), [
    ("return d_branch + dz", "return d_branch", "shortcut's gradient is missing"),
    ("return d_branch + dz", "return d_branch + dy", "must get dz"),
    ("return self.relu_out.forward(f + x)", "return self.relu_out.forward(f) + x", "added after the last ReLU"),
    ("return self.relu_out.forward(f + x)", "return f + x", "final ReLU is missing"),
])
def test_residual_block_names_its_mistakes(old, new, word):
    wrong = solution(residual_block=(old, new))
    rejects("residual_block", wrong["ResidualBlock"], "ResidualBlock", word, args=(2,), shapes=((2, 2, 5, 5),))


# --------------------------------------------------------------------------- the grader's layers


@pytest.mark.parametrize(("c_in", "c_out", "k", "s", "p", "shape"), [
    (1, 2, 3, 1, 1, (2, 1, 8, 8)), (3, 2, 2, 2, 0, (1, 3, 7, 6)), (2, 4, 3, 3, 2, (2, 2, 5, 5))])
def test_kernel_layers_agree_with_dlcore(c_in, c_out, k, s, p, shape):
    r = np.random.default_rng(c_in + k)
    x = r.standard_normal(shape)
    mine, ref = records.KConv2D(c_in, c_out, k, s, p, rng=1), nn.Conv2D(c_in, c_out, k, s, p, dtype="float64")
    ref.params["W"], ref.params["b"] = mine.params["W"].copy(), r.standard_normal(c_out)
    mine.params["b"] = ref.params["b"].copy()
    y = mine.forward(x)
    np.testing.assert_allclose(y, ref.forward(x), rtol=1e-12, atol=1e-12)
    dy = r.standard_normal(y.shape)
    np.testing.assert_allclose(mine.backward(dy), ref.backward(dy), rtol=1e-12, atol=1e-12)
    for key in ("W", "b"):
        np.testing.assert_allclose(mine.grads[key], ref.grads[key], rtol=1e-12, atol=1e-12)
    for pk, ps, pp in ((2, 2, 0), (3, 1, 1), (2, 1, 1)):
        mp, rp = records.KMaxPool2D(pk, ps, pp), nn.MaxPool2D(pk, ps, pp)
        y = mp.forward(x)
        np.testing.assert_array_equal(y, rp.forward(x))
        dy = r.standard_normal(y.shape)
        np.testing.assert_allclose(mp.backward(dy), rp.backward(dy), rtol=1e-12, atol=1e-12)
    from dlcore.nn.im2col import col2im, im2col

    np.testing.assert_array_equal(records.k_im2col(x, k, k, s, p), im2col(x, (k, k), s, p))
    col = r.standard_normal(np.shape(im2col(x, (k, k), s, p)))
    np.testing.assert_allclose(records.k_col2im(col, shape, k, k, s, p), col2im(col, shape, (k, k), s, p),
                               rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- the closing experiment


def test_training_plan_sends_no_test_labels():
    plan = plans.plan_cnn_training("train")
    assert set(plan.inputs) == {"configs", "params", "x_train", "t_train", "x_test", "kwargs"}
    assert "t_test" in plan.expected and len(plan.expected["t_test"]) == len(plan.inputs["x_test"])


def test_training_accepts_the_solution_and_asserts_the_accuracy():
    v = verdict("cnn_training", SOL["train"], "train", data_seed=1, epochs=15, seed=0, minimum=0.98)
    assert v.ok, v.message
    acc = float(re.search(r"reaches (\d+\.\d+)%", v.summary).group(1)) / 100
    assert acc >= 0.98
    print(v.summary)


def test_training_rejects_a_loop_that_never_updates():
    frozen = solution(train=("            optimizer.update(net.params, net.grads)\n", ""))
    rejects("cnn_training", frozen["train"], "train", "at least to halve", data_seed=1, epochs=3, minimum=0.98)
    short = solution(train=("        history.append(total / n)\n", ""))
    rejects("cnn_training", short["train"], "train", "a list of 3 numbers", data_seed=1, epochs=3, minimum=0.98)
