"""Fetching data files: mirrors tried in turn, checksums verified, an atomic cache.

The data folder is ``$DLCORE_DATA`` when that environment variable is set, else
``~/.cache/dlcore`` (see :func:`data_home`). Files are stored there
**decompressed** (``train-images-idx3-ubyte.gz`` is kept as ``train-images-idx3-ubyte``),
each next to a small ``<name>.verified.json`` that records its size and SHA-256
once verification succeeded; a later call checks the size and that record
(cheap: no re-hashing) and does not download again.

What :func:`fetch` guarantees:

- each mirror is tried once, in order, with a short timeout (a few seconds), so an
  offline machine fails fast; a connection error, an HTTP error, a truncated body
  or bad data moves on to the next mirror;
- the download goes to a temporary file inside the cache folder, is decompressed
  (gzip is recognised by its magic bytes) and verified, and only then moved into
  place with :func:`os.replace` (atomic): the cache never holds a half-written or
  unverified file, and temporary files are removed on any error, Ctrl-C included;
- verification: when the SHA-256 of the decompressed bytes is known it decides
  (mirrors may re-compress, so the .gz bytes may differ); otherwise every digest
  given for the .gz as served (SHA-256, MD5) must match. A known size must match too.
- a file placed by hand in the cache folder (compressed or not) is used, after the
  same checks.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import json
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENV_VAR", "DownloadError", "ChecksumError", "FileCheck", "data_home", "fetch"]

#: Environment variable naming the data folder.
ENV_VAR = "DLCORE_DATA"
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16
_OFFLINE_HINT = "dlcore.data.load_digits() needs no download and works offline."


class DownloadError(RuntimeError):
    """No mirror delivered a good copy of a file (the message lists every mirror and why it failed)."""


class ChecksumError(DownloadError):
    """A file's bytes do not match the expected digest or size; nothing was stored in the cache."""

    def __init__(self, message: str, *, expected: dict[str, object] | None = None,
                 actual: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.expected = expected or {}
        self.actual = actual or {}


@dataclass(frozen=True)
class FileCheck:
    """What a file must match. ``sha256``/``size`` describe the decompressed bytes,
    ``gz_sha256``/``gz_md5`` the compressed file exactly as the canonical mirrors serve it.
    ``source`` says where the values come from (provenance, shown in errors)."""

    sha256: str | None = None
    size: int | None = None
    gz_sha256: str | None = None
    gz_md5: str | None = None
    source: str = ""

    def has_digest(self) -> bool:
        return any((self.sha256, self.gz_sha256, self.gz_md5))


@dataclass
class _Mismatch(Exception):
    expected: dict[str, object]
    actual: dict[str, object]

    def __str__(self) -> str:
        parts = [f"expected {k} {self.expected[k]}, got {self.actual.get(k)}" for k in self.expected]
        return "checksum mismatch: " + "; ".join(parts)


class _MirrorFailure(Exception):
    """A mirror delivered nothing usable (truncated body, corrupt gzip)."""


def data_home() -> Path:
    """The data folder: ``$DLCORE_DATA`` if set (and non-empty), else ``~/.cache/dlcore``."""
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dlcore"


def _url(mirror: str, filename: str) -> str:
    return mirror if mirror.endswith("/" + filename) else mirror.rstrip("/") + "/" + filename


def _record_path(final: Path) -> Path:
    return final.with_name(final.name + ".verified.json")


def _hash_file(path: Path, *algorithms: str) -> dict[str, str]:
    hashers = {a: hashlib.new(a, usedforsecurity=False) for a in algorithms}
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _download(url: str, out: Path, timeout: float, progress: bool, label: str) -> None:
    """Stream ``url`` into ``out``; a body shorter than its Content-Length is an error."""
    from tqdm.auto import tqdm  # noqa: PLC0415 - only needed when something is downloaded

    req = urllib.request.Request(url, headers={"User-Agent": "dlcore-data (python urllib)"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(out, "wb") as fh:
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.strip().isdigit() else None
        got = 0
        with tqdm(total=expected, unit="B", unit_scale=True, desc=label, leave=False, disable=not progress) as bar:
            while chunk := resp.read(_CHUNK):
                fh.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    if expected is not None and got != expected:
        raise _MirrorFailure(f"connection closed after {got} of {expected} bytes (truncated download)")


def _decompress(raw: Path, out: Path) -> tuple[dict[str, str], str, int]:
    """Decompress ``raw`` (if gzip) into ``out``; return digests of the raw bytes, SHA-256 and size of the output."""
    raw_digests = _hash_file(raw, "sha256", "md5")
    with open(raw, "rb") as fh:
        is_gzip = fh.read(2) == _GZIP_MAGIC
    sha, size = hashlib.sha256(), 0
    src = gzip.open(raw, "rb") if is_gzip else open(raw, "rb")
    try:
        with src, open(out, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
                sha.update(chunk)
                size += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise _MirrorFailure(f"corrupt or truncated gzip data ({exc})") from exc
    return raw_digests, sha.hexdigest(), size


def _verify(check: FileCheck, raw_digests: dict[str, str], sha256: str, size: int) -> None:
    expected: dict[str, object] = {}
    actual: dict[str, object] = {}
    if check.size is not None and size != check.size:
        expected["size (decompressed, bytes)"], actual["size (decompressed, bytes)"] = check.size, size
    if check.sha256:
        if sha256 != check.sha256.lower():
            expected["sha256 (decompressed)"], actual["sha256 (decompressed)"] = check.sha256.lower(), sha256
    else:
        for key, name in (("gz_sha256", "sha256"), ("gz_md5", "md5")):
            want = getattr(check, key)
            if want and raw_digests[name] != want.lower():
                expected[f"{name} (.gz as served)"], actual[f"{name} (.gz as served)"] = want.lower(), raw_digests[name]
    if expected:
        raise _Mismatch(expected, actual)


def _write_record(final: Path, sha256: str, size: int, origin: str) -> None:
    """Atomically write the verification record of ``final`` (its size, SHA-256 and origin)."""
    record = json.dumps({"file": final.name, "size": size, "sha256": sha256, "origin": origin}, indent=1)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".json.part")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(record + "\n")
        os.replace(tmp, _record_path(final))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _check_cached(final: Path, check: FileCheck) -> None:
    """Cheap re-verification of a cached file; raise ChecksumError (the file is left alone) when it fails."""
    size = final.stat().st_size
    record_file = _record_path(final)
    record: dict[str, object] = {}
    if record_file.exists():
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(record_file.read_text())
    advice = f"Delete {final} (and {record_file.name}) to download it again."
    want_size = check.size if check.size is not None else record.get("size")
    if want_size is not None and size != want_size:
        raise ChecksumError(f"cached file {final} has {size} bytes, expected {want_size}: it is incomplete or "
                            f"from another version. {advice}", expected={"size": want_size}, actual={"size": size})
    if not check.sha256:
        return  # verified on arrival (record) or placed by hand: checked by size only
    stored = record.get("sha256")
    if stored is None:  # placed by hand: hash it once, then record it
        stored = _hash_file(final, "sha256")["sha256"]
        if stored == check.sha256.lower():
            with contextlib.suppress(OSError):  # a read-only cache still works, it just re-hashes
                _write_record(final, stored, size, "placed by hand")
    if stored != check.sha256.lower():
        raise ChecksumError(
            f"cached file {final} does not match: expected sha256 (decompressed) {check.sha256.lower()}, "
            f"got {stored}. {advice}", expected={"sha256": check.sha256.lower()}, actual={"sha256": stored})


def _ingest(raw: Path, final: Path, check: FileCheck, origin: str) -> None:
    """Decompress + verify ``raw`` into a temp file next to ``final``; install it on success."""
    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        raw_digests, sha256, size = _decompress(raw, tmp)
        _verify(check, raw_digests, sha256, size)
        _write_record(final, sha256, size, origin)  # record first: a record without data is harmless
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def fetch(filename: str, mirrors: Sequence[str], sha256: str | FileCheck | None = None,
          cache_dir: str | os.PathLike[str] | None = None, *, size: int | None = None,
          gz_sha256: str | None = None, gz_md5: str | None = None, timeout: float = 5.0,
          progress: bool = True) -> Path:
    """Path of the verified, decompressed ``filename`` in the cache, downloading it if needed.

    ``mirrors``: base URLs (the file name is appended) or full URLs, tried in order, once each.
    ``sha256``: SHA-256 of the decompressed bytes, or a :class:`FileCheck` with all expected values
    (then ``size``/``gz_sha256``/``gz_md5`` are ignored). At least one digest is required.
    ``cache_dir``: default :func:`data_home` (``$DLCORE_DATA`` or ``~/.cache/dlcore``).

    Raises :class:`ChecksumError` when a mirror delivered data that does not match (and no
    other mirror delivered good data), :class:`DownloadError` when no mirror could be read.
    """
    check = sha256 if isinstance(sha256, FileCheck) else FileCheck(sha256, size, gz_sha256, gz_md5)
    if not check.has_digest():
        raise ValueError(f"fetch({filename!r}): no checksum given; pass sha256= (of the decompressed file), "
                         "gz_sha256= or gz_md5= so that a corrupt download cannot be used")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else data_home()
    final = folder / filename.removesuffix(".gz")
    if final.exists():
        _check_cached(final, check)
        return final
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the data folder {folder} ({exc}); set ${ENV_VAR} to a writable "
                            f"folder. {_OFFLINE_HINT}") from exc

    attempts: list[str] = []
    mismatches: list[_Mismatch] = []
    by_hand = folder / filename
    if filename.endswith(".gz") and by_hand.exists():  # a .gz placed by hand: verify and decompress it
        try:
            _ingest(by_hand, final, check, f"placed by hand: {by_hand}")
            return final
        except _Mismatch as exc:
            attempts.append(f"{by_hand} (placed by hand): {exc}")
            mismatches.append(exc)
        except _MirrorFailure as exc:
            attempts.append(f"{by_hand} (placed by hand): {exc}")

    for mirror in mirrors:
        url = _url(mirror, filename)
        fd, raw_name = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".download")
        os.close(fd)
        raw = Path(raw_name)
        try:
            _download(url, raw, timeout, progress, filename)
            _ingest(raw, final, check, url)
            return final
        except _Mismatch as exc:
            attempts.append(f"{url}: {exc}")
            mismatches.append(exc)
        except (_MirrorFailure, urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            attempts.append(f"{url}: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                raw.unlink()

    tried = "\n".join(f"  {i}. {a}" for i, a in enumerate(attempts, 1)) or "  (no mirrors were given)"
    where = (f"To work offline, download {filename} yourself and place it (compressed or decompressed) in\n"
             f"  {folder}\nIt is checked before use. (The data folder is ${ENV_VAR} if set, else ~/.cache/dlcore.)\n"
             f"{_OFFLINE_HINT}")
    if mismatches:
        source = f"Expected values from: {check.source}.\n" if check.source else ""
        raise ChecksumError(f"checksum mismatch for {filename}; nothing was saved to the cache. Tried:\n{tried}\n"
                            f"{source}{where}", expected=mismatches[-1].expected, actual=mismatches[-1].actual)
    raise DownloadError(f"could not download {filename}. Tried:\n{tried}\n{where}")
