"""Encoder–decoder (sequence to sequence, Sutskever et al. 2014) with LSTMs, optionally with attention.

    encoder:  hs = LSTM(Embedding(xs))                       (N, T, H); its summary is h = hs[:, -1]
    decoder:  out = LSTM(Embedding(ys_in), h0 = h, c0 = 0)   (N, T2, H)
              [with attention: out ← [context(hs, out) ; out]   (N, T2, 2H), Bahdanau/Luong style]
              scores = TimeAffine(out)                        (N, T2, V_target)

Training uses teacher forcing: the decoder reads the true previous symbols. With target sequences
``ts`` that start with a start symbol, ``scores = model.forward(xs, ts[:, :-1])`` and the loss is
``TimeSoftmaxCrossEntropy().forward(scores, ts[:, 1:])`` (DLfS-2, chapter 7). ``generate`` decodes
greedily: each step feeds back the arg-max symbol of the previous one.
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn.attention import AdditiveAttention, DotAttention
from dlcore.nn.base import Layer
from dlcore.nn.embedding import Embedding, check_ids
from dlcore.nn.lstm import LSTM
from dlcore.nn.recurrent import Composite
from dlcore.nn.time_layers import TimeAffine

__all__ = ["Encoder", "Decoder", "Seq2Seq"]


class Encoder(Composite):
    """ids (N, T) -> hs (N, T, H) = LSTM(Embedding(ids)) from a zero state; ``backward(dhs)`` -> None."""

    def __init__(self, vocab_size: int, wordvec_size: int, hidden_size: int, *, rng: backend.Seed = None,
                 dtype: Any = "float32") -> None:
        gen = backend.default_rng(rng)
        self.embed = Embedding(vocab_size, wordvec_size, rng=gen, dtype=dtype)
        self.lstm = LSTM(wordvec_size, hidden_size, rng=gen, dtype=dtype)
        self.hidden_size = int(hidden_size)

    def named_children(self) -> dict[str, Layer]:
        return {"embed": self.embed, "lstm": self.lstm}

    def forward(self, xs: Any) -> Any:
        return self.lstm.forward(self.embed.forward(xs))

    def backward(self, dhs: Any) -> None:
        self.embed.backward(self.lstm.backward(dhs))


class Decoder(Composite):
    """ids (N, T2), initial state h0 (N, H) [, encoder states hs (N, T, H)] -> scores (N, T2, V).

    ``attention``: None, ``'dot'`` (Luong, DotAttention) or ``'additive'`` (Bahdanau, AdditiveAttention).
    ``backward(dscores)`` returns (dh0, dhs_enc) (dhs_enc None without attention).
    """

    def __init__(self, vocab_size: int, wordvec_size: int, hidden_size: int, *, attention: str | None = None,
                 rng: backend.Seed = None, dtype: Any = "float32") -> None:
        gen = backend.default_rng(rng)
        if attention not in (None, "dot", "additive"):
            raise ValueError(f"Decoder: expected attention None, 'dot' or 'additive', got {attention!r}")
        self.embed = Embedding(vocab_size, wordvec_size, rng=gen, dtype=dtype)
        self.lstm = LSTM(wordvec_size, hidden_size, rng=gen, dtype=dtype)
        self.attention: Layer | None = None
        if attention == "dot":
            self.attention = DotAttention()
        elif attention == "additive":
            self.attention = AdditiveAttention(hidden_size, hidden_size, hidden_size, rng=gen, dtype=dtype)
        width = hidden_size * (2 if attention else 1)
        self.affine = TimeAffine(width, vocab_size, rng=gen, dtype=dtype)
        self.hidden_size, self.vocab_size = int(hidden_size), int(vocab_size)

    def named_children(self) -> dict[str, Layer]:
        kids = {"embed": self.embed, "lstm": self.lstm}
        if self.attention is not None:
            kids["attention"] = self.attention
        kids["affine"] = self.affine
        return kids

    def _needs(self, hs_enc: Any) -> None:
        if self.attention is not None and hs_enc is None:
            raise ValueError("Decoder: this decoder has attention; pass the encoder states hs_enc (N, T, H)")

    def _scores(self, out: Any, hs_enc: Any) -> Any:
        if self.attention is not None:
            xp = backend.namespace(out)
            out = xp.concat([self.attention.forward(hs_enc, out), out], axis=-1)
        return self.affine.forward(out)

    def forward(self, ids: Any, h0: Any, hs_enc: Any = None) -> Any:
        self._needs(hs_enc)
        out = self.lstm.forward(self.embed.forward(ids), h0=h0)
        return self._scores(out, hs_enc)

    def backward(self, dscores: Any) -> tuple[Any, Any]:
        dout = self.affine.backward(dscores)
        dhs_enc = None
        if self.attention is not None:
            h = self.hidden_size
            dctx, dout = dout[:, :, :h], dout[:, :, h:]
            dhs_enc, dq = self.attention.backward(dctx)
            dout = dout + dq
        self.embed.backward(self.lstm.backward(dout))
        return self.lstm.dh0, dhs_enc

    def generate(self, h0: Any, start_id: int, length: int, hs_enc: Any = None) -> tuple[Any, Any]:
        """Greedy decoding from h0: (ids (N, length), attention weights (N, length, T) or None)."""
        self._needs(hs_enc)
        xp = backend.namespace(h0)
        n = h0.shape[0]
        x = xp.full((n, 1), int(start_id), dtype=xp.int64, device=backend.device_of(h0))
        h, c = h0, xp.zeros_like(h0)
        ids, weights = [], []
        for _ in range(int(length)):
            out = self.lstm.forward(self.embed.forward(x), h0=h, c0=c)
            h, c = self.lstm.last_state["h"], self.lstm.last_state["c"]
            scores = self._scores(out, hs_enc)
            if self.attention is not None:
                weights.append(self.attention.weights[:, 0, :])
            x = xp.reshape(xp.argmax(scores[:, 0, :], axis=-1), (n, 1))
            ids.append(x[:, 0])
        return xp.stack(ids, axis=1), (xp.stack(weights, axis=1) if weights else None)


class Seq2Seq(Composite):
    """scores = Decoder(dec_in, h0 = Encoder(xs)[:, -1] [, attention over Encoder(xs)]); see the module docstring.

    ``forward(xs, dec_in)`` (teacher forcing) -> scores (N, T2, target_vocab_size);
    ``backward(dscores)`` -> None (stores every gradient); ``generate(xs, start_id, length)`` -> ids (N, length).
    After ``generate`` with attention, ``attention_weights`` is (N, length, T).
    Parameters appear as "encoder.embed.W", "decoder.lstm.Wx", ...
    """

    def __init__(self, vocab_size: int, wordvec_size: int, hidden_size: int, *, target_vocab_size: int | None = None,
                 attention: str | None = None, rng: backend.Seed = None, dtype: Any = "float32") -> None:
        gen = backend.default_rng(rng)
        self.encoder = Encoder(vocab_size, wordvec_size, hidden_size, rng=gen, dtype=dtype)
        target = vocab_size if target_vocab_size is None else target_vocab_size
        self.decoder = Decoder(target, wordvec_size, hidden_size, attention=attention, rng=gen, dtype=dtype)
        self.attention_weights: Any = None
        self._hs: Any = None

    def named_children(self) -> dict[str, Layer]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def forward(self, xs: Any, dec_in: Any) -> Any:
        check_ids("Seq2Seq", dec_in, self.decoder.vocab_size)
        if dec_in.ndim != 2 or xs.ndim != 2 or dec_in.shape[0] != xs.shape[0]:
            raise ValueError(f"Seq2Seq: expected xs (N, T) and dec_in (N, T2) id arrays with one batch size, "
                             f"got shapes {tuple(xs.shape)} and {tuple(dec_in.shape)}")
        hs = self._hs = self.encoder.forward(xs)
        return self.decoder.forward(dec_in, hs[:, -1, :], hs if self.decoder.attention is not None else None)

    def backward(self, dscores: Any) -> None:
        if self._hs is None:
            raise RuntimeError("Seq2Seq: backward called before forward; call forward first")
        xp = backend.namespace(dscores)
        dh0, dhs = self.decoder.backward(dscores)
        n, t, h = self._hs.shape
        # the decoder's initial state was the encoder's last state
        last = xp.concat([xp.zeros((n, t - 1, h), dtype=dh0.dtype, device=backend.device_of(dh0)),
                          dh0[:, None, :]], axis=1)
        self.encoder.backward(last if dhs is None else dhs + last)

    def generate(self, xs: Any, start_id: int, length: int) -> Any:
        """Greedy decoding of ``length`` symbols after ``start_id`` for each source sequence in xs (N, T)."""
        hs = self.encoder.forward(xs)
        ids, self.attention_weights = self.decoder.generate(
            hs[:, -1, :], start_id, length, hs if self.decoder.attention is not None else None)
        return ids
