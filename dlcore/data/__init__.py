"""Data for the course: the offline digits, toy 2-D sets, MNIST/Fashion-MNIST, mini-batches.

- :func:`load_digits`: scikit-learn's bundled 8x8 digits, no network needed.
- :mod:`dlcore.data.toy`: logic gates, blobs, linearly separable sets, XOR, moons, circles, spirals.
- :func:`load_mnist`, :func:`load_fashion_mnist`: downloaded once, verified, cached in the data
  folder ``$DLCORE_DATA`` (default ``~/.cache/dlcore``).
- :mod:`dlcore.data.sequences`: generated sequence tasks (sine waves, embedded Reber grammar, addition).
- :func:`batches`: seeded mini-batches on any backend.
"""

from dlcore.data.batches import BatchIterator, batches
from dlcore.data.dataset import Dataset, stratified_indices, validation_split
from dlcore.data.digits import load_digits
from dlcore.data.download import ENV_VAR, ChecksumError, DownloadError, FileCheck, data_home, fetch
from dlcore.data.idx import IDXError, idx_bytes, parse_idx, read_idx, write_idx
from dlcore.data.mnist import load_fashion_mnist, load_mnist
from dlcore.data.sequences import (
    ADDITION_VOCAB,
    REBER_SYMBOLS,
    NextSymbolData,
    addition_data,
    decode,
    embedded_reber_string,
    embedded_reber_strings,
    next_symbol_data,
    reber_legal_next,
    reber_string,
    sine_waves,
)
from dlcore.data.toy import blobs, circles, linearly_separable, logic_gate, moons, spirals, xor

__all__ = [
    "BatchIterator", "batches",
    "Dataset", "stratified_indices", "validation_split",
    "load_digits",
    "ENV_VAR", "ChecksumError", "DownloadError", "FileCheck", "data_home", "fetch",
    "IDXError", "idx_bytes", "parse_idx", "read_idx", "write_idx",
    "load_fashion_mnist", "load_mnist",
    "sine_waves", "REBER_SYMBOLS", "reber_string", "embedded_reber_string", "embedded_reber_strings",
    "reber_legal_next", "NextSymbolData", "next_symbol_data", "ADDITION_VOCAB", "addition_data", "decode",
    "blobs", "circles", "linearly_separable", "logic_gate", "moons", "spirals", "xor",
]
