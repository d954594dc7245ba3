"""Generated sequence tasks for the RNN chapter (seeded, offline, NumPy arrays on the host).

- :func:`sine_waves`: noisy sine waves of random frequency and phase, and the next value to predict.
- The embedded Reber grammar (Hochreiter & Schmidhuber 1997): :func:`reber_string`,
  :func:`embedded_reber_string`, :func:`reber_legal_next` (the symbols allowed after each prefix) and
  :func:`next_symbol_data` (padded id arrays for next-symbol prediction). The symbol after the inner
  string must repeat the second symbol of the whole string: a dependency over the full length.
- :func:`addition_data`: "123+45" -> "168" character sequences for an encoder–decoder (DLfS-2, chapter 7).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dlcore import backend

__all__ = [
    "sine_waves", "REBER_SYMBOLS", "reber_string", "embedded_reber_string", "embedded_reber_strings",
    "reber_legal_next", "NextSymbolData", "next_symbol_data", "ADDITION_VOCAB", "addition_data", "decode",
]


# --------------------------------------------------------------------------- sine waves


def sine_waves(n_sequences: int, length: int, *, rng: backend.Seed = None, period: tuple[float, float] = (8.0, 32.0),
               noise: float = 0.0, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """xs, ys of shape (n, length, 1): x_t = sin(2π t / P + φ) + ε_t and y_t = sin(2π (t+1) / P + φ) (clean).

    P ~ U[period] and φ ~ U[0, 2π) per sequence, ε_t ~ N(0, noise²).
    """
    if n_sequences <= 0 or length <= 0:
        raise ValueError(f"sine_waves: expected positive n_sequences and length, got {n_sequences} and {length}")
    gen = backend.default_rng(rng)
    p = gen.uniform(period[0], period[1], (n_sequences, 1))
    phi = gen.uniform(0.0, 2 * np.pi, (n_sequences, 1))
    t = np.arange(length + 1)[None, :]
    wave = np.sin(2 * np.pi * t / p + phi)
    xs = wave[:, :-1] + noise * gen.standard_normal((n_sequences, length))
    return xs[..., None].astype(dtype), wave[:, 1:, None].astype(dtype)


# --------------------------------------------------------------------------- Reber grammar

#: The seven symbols, in id order.
REBER_SYMBOLS = "BTPSXVE"

# Reber's automaton after the initial B: state -> ((symbol, next state), ...); state 3 emits the final E.
_REBER = {
    0: (("T", 1), ("P", 5)),
    1: (("S", 1), ("X", 2)),
    2: (("S", 3), ("X", 5)),
    3: (("E", None),),
    4: (("P", 2), ("V", 3)),
    5: (("T", 5), ("V", 4)),
}


def reber_string(rng: backend.Seed = None) -> str:
    """One string of the Reber grammar, each branch taken with probability ½ (e.g. 'BTSSXXTVVE')."""
    gen = backend.default_rng(rng)
    out, state = ["B"], 0
    while state is not None:
        edges = _REBER[state]
        symbol, state = edges[int(gen.integers(len(edges)))]
        out.append(symbol)
    return "".join(out)


def embedded_reber_string(rng: backend.Seed = None) -> str:
    """'B' + a + (Reber string) + a + 'E' with a ∈ {T, P} chosen with probability ½."""
    gen = backend.default_rng(rng)
    a = "TP"[int(gen.integers(2))]
    return "B" + a + reber_string(gen) + a + "E"


def embedded_reber_strings(n: int, rng: backend.Seed = None, *, max_length: int | None = None) -> list[str]:
    """``n`` embedded Reber strings (redrawn while longer than ``max_length``, if given)."""
    gen = backend.default_rng(rng)
    if max_length is not None and max_length < 9:
        raise ValueError(f"embedded_reber_strings: the shortest embedded Reber string has 9 symbols, "
                         f"got max_length={max_length}")
    out = []
    while len(out) < n:
        s = embedded_reber_string(gen)
        if max_length is None or len(s) <= max_length:
            out.append(s)
    return out


def reber_legal_next(s: str, *, embedded: bool = True) -> list[frozenset[str]]:
    """For k = 0..len(s)-2: the set of symbols the grammar allows after the prefix s[:k+1].

    Raises ValueError if ``s`` is not a string of the (embedded) Reber grammar.
    """
    sets: list[frozenset[str]] = []

    def fail(pos: int) -> ValueError:
        kind = "an embedded Reber" if embedded else "a Reber"
        return ValueError(f"reber_legal_next: {s!r} is not {kind} string (unexpected symbol at position {pos})")

    def inner(start: int) -> int:
        """Follow a Reber string starting at s[start] == 'B'; returns the index of its final 'E'."""
        if start >= len(s) or s[start] != "B":
            raise fail(start)
        state, k = 0, start
        while True:
            edges = dict(_REBER[state])
            sets.append(frozenset(edges))
            k += 1
            if k >= len(s) or s[k] not in edges:
                raise fail(k)
            state = edges[s[k]]
            if state is None:  # the final E
                return k

    if not embedded:
        end = inner(0)
        if end != len(s) - 1:
            raise fail(end + 1)
        return sets
    if len(s) < 9 or s[0] != "B" or s[1] not in "TP":
        raise fail(0 if not s or s[0] != "B" else 1)
    sets.append(frozenset("TP"))            # after B
    sets.append(frozenset("B"))             # after B a: the inner string starts
    end = inner(2)
    sets.append(frozenset(s[1]))            # after the inner E: repeat a (the long-range dependency)
    if end + 2 != len(s) - 1 or s[end + 1] != s[1] or s[end + 2] != "E":
        raise fail(end + 1)
    sets.append(frozenset("E"))
    return sets


class NextSymbolData(NamedTuple):
    """Padded next-symbol prediction data: predict ts[n, t] (the symbol after xs[n, t]).

    xs (N, L) int64 ids of s[:-1] (padded with 0); ts (N, L) ids of s[1:] (padded with -1, the
    ignore label); legal (N, L, 7) bool, the symbols allowed after each prefix (False at padding);
    lengths (N,) the number of real positions.
    """

    xs: np.ndarray
    ts: np.ndarray
    legal: np.ndarray
    lengths: np.ndarray


def next_symbol_data(strings: list[str], *, embedded: bool = True, pad_to: int | None = None) -> NextSymbolData:
    """Ids and legal-next masks for next-symbol prediction on (embedded) Reber strings."""
    if not strings:
        raise ValueError("next_symbol_data: expected at least one string")
    ids = {c: i for i, c in enumerate(REBER_SYMBOLS)}
    lengths = np.array([len(s) - 1 for s in strings], dtype=np.int64)
    width = int(lengths.max()) if pad_to is None else int(pad_to)
    if width < lengths.max():
        raise ValueError(f"next_symbol_data: pad_to={pad_to} is shorter than the longest string "
                         f"({lengths.max()} steps)")
    n = len(strings)
    xs = np.zeros((n, width), dtype=np.int64)
    ts = np.full((n, width), -1, dtype=np.int64)
    legal = np.zeros((n, width, len(REBER_SYMBOLS)), dtype=bool)
    for row, s in enumerate(strings):
        k = len(s) - 1
        xs[row, :k] = [ids[c] for c in s[:-1]]
        ts[row, :k] = [ids[c] for c in s[1:]]
        for t, allowed in enumerate(reber_legal_next(s, embedded=embedded)):
            legal[row, t, [ids[c] for c in allowed]] = True
    return NextSymbolData(xs, ts, legal, lengths)


# --------------------------------------------------------------------------- addition

#: Characters of the addition task, in id order: digits, '+', '_' (start of the answer), ' ' (padding).
ADDITION_VOCAB = "0123456789+_ "


def addition_data(n: int, *, digits: int = 3, rng: backend.Seed = None,
                  reverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Questions "a+b" and answers "_(a+b)" as id arrays, a, b uniform in [0, 10^digits).

    questions (n, 2·digits + 1): "16+75  " padded with spaces (reversed with ``reverse=True``, a
    trick that helps the encoder); answers (n, digits + 2): "_91  " — the start symbol '_' then the
    sum padded with spaces. Decode with :func:`decode`. Train with ``dec_in = answers[:, :-1]`` and
    targets ``answers[:, 1:]``; generate ``digits + 1`` symbols after ``start_id = ADDITION_VOCAB.index('_')``.
    """
    if n <= 0 or digits <= 0:
        raise ValueError(f"addition_data: expected positive n and digits, got {n} and {digits}")
    gen = backend.default_rng(rng)
    a = gen.integers(0, 10 ** digits, n)
    b = gen.integers(0, 10 ** digits, n)
    ids = {c: i for i, c in enumerate(ADDITION_VOCAB)}
    q_len, a_len = 2 * digits + 1, digits + 2
    questions = np.empty((n, q_len), dtype=np.int64)
    answers = np.empty((n, a_len), dtype=np.int64)
    for row in range(n):
        q = f"{a[row]}+{b[row]}".ljust(q_len)
        if reverse:
            q = q[::-1]
        questions[row] = [ids[c] for c in q]
        answers[row] = [ids[c] for c in ("_" + str(a[row] + b[row])).ljust(a_len)]
    return questions, answers


def decode(ids: np.ndarray, vocab: str = ADDITION_VOCAB) -> list[str]:
    """Id rows (N, L) -> strings (any backend's array; moved to the host)."""
    host = backend.to_numpy(ids)
    if host.ndim == 1:
        host = host[None]
    return ["".join(vocab[int(i)] for i in row) for row in host]
