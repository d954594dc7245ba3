"""The six chapters through the real pipeline: release, then one ``python -m grader autograde --workers 1`` batch.

Per chapter (the steps are written once in tests/fixtures/grading_helpers.py; what differs is data below):
- the release, and the committed course/ notebooks, contain no solution code and no hidden tests;
- the solution (the release filled with the solution cells) scores full marks with no error output in any cell
  and no OutputLimit note (the grading time is printed, never asserted: no test depends on the machine's speed);
- the released notebook as is runs to its last cell (every code cell executed, kernel alive) and scores 0;
- each prepared wrong submission loses EXACTLY the exercises its mistake touches, each scored 0, with the cause
  named in the CSV reason; the later exercises that build on a wrong one keep their points (they are graded with
  the grader's own reference for the earlier part).

The mistakes:
- 01: the perceptron update with the sign of its weight step flipped: loses that exercise only (train_perceptron is
  graded following the student's own update results);
- 02: Affine stores dL/dW transposed, grads["W"] = (X^T dY).T: loses the Affine test only (the two-layer network and
  the training run are built from the grader's correct layers), and the feedback HTML carries the diagnosis;
- 03: Adam without bias correction; momentum with the sign of the lecture's gradient term flipped (Δw ← μΔw + εg);
  BatchNorm's backward without the mean term; dropout that does not rescale the kept units. The closing
  experiment's check trains with the grader's own gradient step, so none of these costs its points;
- 04: Conv2D's dW with its channel axes swapped; convolve2d without the kernel flip (the correlation); MaxPool2D's
  backward routing dL/dy to every cell of the window; col2im returning the padded array;
- 05: swapped CD phases; a CD that forgets the hidden bias; a free energy with log(1 + exp(x)) (overflows on the
  hidden test); a DBN loop that passes binary samples up instead of probabilities (the closing experiment pretrains
  through dlcore's reference RBMs, the DBN loop is graded with a stand-in train_rbm, CD with injected uniforms);
- 06: RNN weight gradients overwritten instead of summed over time; LSTM gates read in PyTorch's order; scaled
  dot-product attention without 1/√d_k together with clipping per tensor instead of by the global norm; a wrong
  LSTM, LayerNorm and AdditiveAttention together, which lose those three exercises only (the closing experiments
  train with the grader's correct earlier layers, the encoder layer is checked with stand-ins).
"""

from __future__ import annotations

import grading_helpers as H  # tests/fixtures, on pytest's pythonpath
import pytest

from grader.course.release import REPO_ROOT, release

pytestmark = pytest.mark.slow

#: chapter -> its notebooks (stems), and optionally: the solution's exact total points, its exact or minimum
#: number of graded exercises, --feedback and the phrases the feedback HTML of a student must carry
CHAPTERS = {
    "01_perceptron": {"notebooks": {"perceptron"}, "feedback": True},
    "02_backprop": {"notebooks": {"backprop"}, "feedback": True,
                    "feedback_html": {"wrong_affine": ["transposed", "dL/dW = Xᵀ dY"]}},
    "03_optimizers": {"notebooks": {"optimizers"}, "min_exercises": 10},
    "04_cnn": {"notebooks": {"cnn"}, "points": 24, "exercises": 12},
    "05_rbm_dbn": {"notebooks": {"rbm_dbn"}, "min_exercises": 9},
    "06_rnn": {"notebooks": {"rnn_lstm", "attention_transformer"}, "min_exercises": 10},
}

#: chapter -> student -> [(answer cell: grade_id, or notebook_stem:grade_id with several notebooks,
#:                         text in the solution, replacement)]
MISTAKES: dict[str, dict[str, list[tuple[str, str, str]]]] = {
    "01_perceptron": {
        "wrong_update_sign": [("perceptron_update", "w_new = w + eta * (y - y_hat) * x",
                               "w_new = w - eta * (y - y_hat) * x")],
    },
    "02_backprop": {
        "wrong_affine": [("affine", 'self.grads["W"] = self.x.T @ dout', 'self.grads["W"] = (self.x.T @ dout).T')],
    },
    "03_optimizers": {
        "wrong_adam": [("adam", "            m_hat = self.m[key] / (1 - self.beta1 ** self.t)\n"
                                "            v_hat = self.v[key] / (1 - self.beta2 ** self.t)\n",
                        "            m_hat = self.m[key]\n            v_hat = self.v[key]\n")],
        "wrong_momentum": [("momentum", "self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]",
                            "self.v[key] = self.momentum * self.v[key] + self.lr * grads[key]")],
        "wrong_batchnorm": [("batchnorm",
                             "return (m * dxhat - dxhat.sum(axis=0) - self.xhat * np.sum(dxhat * self.xhat, axis=0)) "
                             "/ (m * self.std)",
                             "return (m * dxhat - self.xhat * np.sum(dxhat * self.xhat, axis=0)) / (m * self.std)")],
        "wrong_dropout": [("dropout", "self.mask = (self.rng.random(x.shape) >= self.p) / (1.0 - self.p)",
                           "self.mask = (self.rng.random(x.shape) >= self.p) * 1.0")],
    },
    "04_cnn": {
        "conv_dw_transposed": [("conv2d", 'self.grads["W"] = (dy_mat.T @ self.col).reshape(w.shape)',
                                'self.grads["W"] = (dy_mat.T @ self.col).reshape(w.shape).transpose(1, 0, 2, 3)')],
        "conv_unflipped": [("convolve2d", "return correlate2d(x, h[::-1, ::-1])", "return correlate2d(x, h)")],
        "maxpool_every_cell": [("maxpool2d", "share = np.where(self.x_pad[:, :, rows, cols] == self.y, left, 0.0)",
                                "share = dy")],
        "col2im_padded": [("col2im", "return dx[:, :, pad:pad + h, pad:pad + w]", "return dx")],
    },
    "05_rbm_dbn": {
        "swapped_phases": [("cd_gradient", 'return {"W": (vk.T @ phk - v0.T @ ph0) / n,\n'
                            '            "b": vk.mean(axis=0) - v0.mean(axis=0),\n'
                            '            "c": phk.mean(axis=0) - ph0.mean(axis=0)}',
                            'return {"W": (v0.T @ ph0 - vk.T @ phk) / n,\n'
                            '            "b": v0.mean(axis=0) - vk.mean(axis=0),\n'
                            '            "c": ph0.mean(axis=0) - phk.mean(axis=0)}')],
        "no_hidden_bias": [("cd_gradient", "p_h_given_v(v0, W, c)", "p_h_given_v(v0, W, 0.0 * c)"),
                           ("cd_gradient", "p_h_given_v(vk, W, c)", "p_h_given_v(vk, W, 0.0 * c)")],
        "naive_free_energy": [("free_energy", "np.sum(softplus(c + v @ W), axis=1)",
                               "np.sum(np.log(1.0 + np.exp(c + v @ W)), axis=1)")],
        "dbn_samples": [("pretrain_dbn", "x = p_h_given_v(x, W, c)",
                         "x = (np.random.default_rng(0).random((len(x), n_hidden)) < p_h_given_v(x, W, c))"
                         ".astype(float)")],
    },
    "06_rnn": {
        "wrong_bptt": [("rnn_lstm:rnn", "            dwx += xs[:, t].T @ da\n", "            dwx = xs[:, t].T @ da\n")],
        "wrong_lstm_gates": [("rnn_lstm:lstm_cell",
                              "f, g, i, o = sigmoid(a[:, :H]), np.tanh(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H]), "
                              "sigmoid(a[:, 3 * H:])",
                              "i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), "
                              "sigmoid(a[:, 3 * H:])")],
        "wrong_scale_and_clip": [
            ("attention_transformer:sdpa", "s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])",
             "s = q @ np.swapaxes(k, -1, -2)"),
            ("rnn_lstm:clip_grads",
             "    scale = max_norm / max(norm, max_norm)\n"
             "    for key in grads:\n        grads[key] = grads[key] * scale",
             "    for key in grads:\n"
             "        grads[key] = grads[key] * (max_norm / max(float(np.linalg.norm(grads[key])), max_norm))"),
        ],
        "wrong_earlier_layers": [
            ("rnn_lstm:lstm", "            dwh += h_prev.T @ da\n", "            dwh = h_prev.T @ da\n"),
            ("attention_transformer:layer_norm", "return inv * (d - d.mean(axis=-1, keepdims=True) - xhat",
             "return inv * (d - xhat"),
            ("attention_transformer:additive_attention", "ds = a * (da - np.sum(da * a, axis=-1, keepdims=True))",
             "ds = a * da"),
        ],
    },
}

#: chapter -> student -> {exercise: a phrase (or several) its CSV reason must contain}; the student loses exactly
#: these exercises
EXPECTED: dict[str, dict[str, dict[str, str | tuple[str, ...]]]] = {
    "01_perceptron": {
        "wrong_update_sign": {"test_perceptron_update": ("w does not match", "the sign is flipped")},
    },
    "02_backprop": {
        "wrong_affine": {"test_affine": ("dW", "transposed")},
    },
    "03_optimizers": {
        "wrong_adam": {"test_adam": "the bias correction is missing"},
        "wrong_momentum": {"test_momentum": "the sign of the gradient term is flipped"},
        "wrong_batchnorm": {"test_batchnorm": "the mean term is missing"},
        "wrong_dropout": {"test_dropout": "the kept units are not scaled"},
    },
    "04_cnn": {
        "conv_dw_transposed": {"test_conv2d": "channel axes swapped"},
        "conv_unflipped": {"test_convolve2d": "kernel is not flipped"},
        "maxpool_every_cell": {"test_maxpool2d": "every cell of the window"},
        "col2im_padded": {"test_col2im": "padding is not removed"},
    },
    "05_rbm_dbn": {
        "swapped_phases": {"test_cd_gradient": "phases are swapped"},
        "no_hidden_bias": {"test_cd_gradient": "hidden bias c is missing"},
        "naive_free_energy": {"test_free_energy": ("overflow", "softplus")},
        "dbn_samples": {"test_pretrain_dbn": ("RBM 2", "binary samples were passed")},
    },
    "06_rnn": {
        "wrong_bptt": {"rnn_lstm:test_rnn": "accumulated"},
        "wrong_lstm_gates": {"rnn_lstm:test_lstm_cell": "PyTorch's order"},
        "wrong_scale_and_clip": {"attention_transformer:test_sdpa": "1/√d_k",
                                 "rnn_lstm:test_clip_grads": "clipped by its own norm"},
        "wrong_earlier_layers": {"rnn_lstm:test_lstm": "accumulated",
                                 "attention_transformer:test_layer_norm": "numerical gradient",
                                 "attention_transformer:test_additive_attention": "dhs_enc"},
    },
}


def test_tables_agree():
    """Every chapter has its notebooks, mistakes and expectations, and every wrong submission has what it loses."""
    assert set(CHAPTERS) == set(MISTAKES) == set(EXPECTED)
    for chapter in CHAPTERS:
        assert set(MISTAKES[chapter]) == set(EXPECTED[chapter]), chapter
        assert all(EXPECTED[chapter].values()), chapter


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_chapter_release_and_autograde(chapter, tmp_path):
    spec = CHAPTERS[chapter]
    sources = sorted((REPO_ROOT / "solutions" / chapter).glob("*.ipynb"))
    assert {p.stem for p in sources} == spec["notebooks"], sources
    release([chapter], release_dir=tmp_path / "release")
    for source in sources:
        H.check_release_is_clean(source, tmp_path / "release" / chapter / source.name)
        H.check_release_is_clean(source, REPO_ROOT / "course" / chapter / source.name)

    subs = tmp_path / "submissions"
    H.build_submissions(sources, tmp_path / "release" / chapter, subs, MISTAKES[chapter])
    grades, workdir, log = H.autograde(chapter, subs, tmp_path, feedback=spec.get("feedback", False))

    sol = H.assert_solution_full_marks(grades, workdir, chapter, sources, log)
    graded = [ex for ex in sol if ex != "TOTAL"]
    if "points" in spec:
        assert sol["TOTAL"][1] == spec["points"], sol["TOTAL"]
    if "exercises" in spec:
        assert len(graded) == spec["exercises"], graded
    assert len(graded) >= spec.get("min_exercises", 1), graded
    if len(sources) > 1:  # the grader names each exercise after its notebook
        assert {ex.partition(":")[0] for ex in graded} == spec["notebooks"], graded

    H.assert_released_scores_zero(grades, workdir, chapter, sources, log)

    for student, causes in EXPECTED[chapter].items():
        H.assert_loses_exactly(grades, sol, student, causes, log)

    for student, phrases in spec.get("feedback_html", {}).items():
        html = "".join(p.read_text(encoding="utf-8") for p in (workdir / "feedback" / student / chapter).glob("*.html"))
        for phrase in phrases:
            assert phrase in html, f"{student}: {phrase!r} not in the feedback HTML"
