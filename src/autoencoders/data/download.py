"""Where data files live, how they are verified, and how they are downloaded.

Every dataset declares a :class:`Source`: its folder name and one :class:`FileSpec` per
file (name, URLs, size, MD5 of the file and, for ``.gz`` files, MD5 of the decompressed
content). Nothing here runs at import; environment variables are read at call time.

Search order for a file ``F`` of a dataset whose folder is ``<folder>``:

1. each folder ``D`` of :func:`data_dirs` (the ``data_dir`` argument if given, then
   ``$AUTOENCODERS_DATA`` if set, then the user cache ``pooch.os_cache("autoencoders")``),
   looking at ``D/<folder>/F`` and then ``D/F``;
2. the dataset's system folders (:attr:`Source.extra_dirs`), e.g. Debian's
   ``/usr/share/datasets/fashion-mnist/``.

A file is accepted when its MD5 equals :attr:`FileSpec.md5` or, for a ``.gz`` file, when
the MD5 of its decompressed bytes equals :attr:`FileSpec.raw_md5` (Debian re-gzips
Fashion-MNIST, which changes the ``.gz`` bytes but not the content). A present file that
matches neither is reported with :class:`~autoencoders.errors.DataCorruptError`, unless a
valid copy exists elsewhere or its MD5 is that of another known file (e.g. MNIST's
``train-images-idx3-ubyte.gz`` lying flat in ``D`` while Fashion-MNIST is looked up).

Downloads go through :func:`pooch.retrieve` into ``<first writable data dir>/<folder>/``,
trying each URL of :attr:`FileSpec.urls` in order. Pooch writes to a temporary file and
moves it into place only when the MD5 matches, so a bad download never looks valid.

Mirrors and tests: the URLs come from the spec only. To use another server, replace the
dataset class's ``source`` attribute (``dataclasses.replace`` on the :class:`Source` and
its :class:`FileSpec` entries); the tests do this with ``monkeypatch.setattr``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tempfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pooch

from autoencoders.errors import DataCorruptError, DataMissingError

ENV_DATA_DIR = "AUTOENCODERS_DATA"
DOWNLOAD_TIMEOUT_S = 30.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    Attributes:
        name: File name, e.g. ``"train-images-idx3-ubyte.gz"``.
        urls: Download URLs, primary first, then mirrors.
        size: Size in bytes of the official file (as downloaded).
        md5: MD5 of the official file (as downloaded).
        raw_md5: For ``.gz`` files, MD5 of the decompressed bytes; ``None`` otherwise.
    """

    name: str
    urls: tuple[str, ...]
    size: int
    md5: str
    raw_md5: str | None = None


@dataclass(frozen=True)
class Source:
    """All files of one dataset and where to look for them besides the data dirs.

    Attributes:
        dataset: Registry name, e.g. ``"mnist"``; used in messages.
        folder: Sub-folder of a data dir holding the files, e.g. ``"mnist"``.
        files: One spec per file.
        extra_dirs: System folders searched after the data dirs.
    """

    dataset: str
    folder: str
    files: tuple[FileSpec, ...]
    extra_dirs: tuple[str, ...] = ()


def data_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """The data folders searched, in order; downloads go to the first writable one.

    Args:
        data_dir: Explicit folder (``--data-dir``), searched first when given.

    Returns:
        ``[data_dir, $AUTOENCODERS_DATA, pooch.os_cache("autoencoders")]`` without the
        entries that are unset, duplicates removed, each expanded (``~``) and absolute.
    """
    found = [data_dir, os.environ.get(ENV_DATA_DIR) or None, pooch.os_cache("autoencoders")]
    dirs: list[Path] = []
    for entry in found:
        if entry is None:
            continue
        path = Path(entry).expanduser().absolute()
        if path not in dirs:
            dirs.append(path)
    return dirs


def candidates(source: Source, spec: FileSpec, data_dir: str | Path | None = None) -> list[Path]:
    """Every path where ``spec`` may be found, in search order (existing or not)."""
    paths = []
    for base in data_dirs(data_dir):
        paths += [base / source.folder / spec.name, base / spec.name]
    paths += [Path(extra) / spec.name for extra in source.extra_dirs]
    return paths


def find(source: Source, spec: FileSpec, data_dir: str | Path | None = None) -> Path | None:
    """The first existing candidate path of ``spec``, without checking its content."""
    return next((path for path in candidates(source, spec, data_dir) if path.is_file()), None)


def md5_of(path: str | Path) -> str:
    """MD5 hex digest of a file's bytes."""
    stat = Path(path).stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


def raw_md5_of(path: str | Path) -> str | None:
    """MD5 hex digest of a gzip file's decompressed bytes, or ``None`` if it is not valid gzip."""
    stat = Path(path).stat()
    return _raw_digest(str(path), stat.st_size, stat.st_mtime_ns)


def matches(path: Path, spec: FileSpec) -> bool:
    """Whether the file at ``path`` is ``spec``'s file (by MD5 or decompressed MD5)."""
    if md5_of(path) == spec.md5:
        return True
    return spec.raw_md5 is not None and raw_md5_of(path) == spec.raw_md5


def locate(
    source: Source,
    spec: FileSpec,
    data_dir: str | Path | None = None,
    known_elsewhere: frozenset[str] = frozenset(),
) -> Path | None:
    """The first candidate path holding a verified copy of ``spec``.

    Args:
        source: The dataset's source.
        spec: The file to find.
        data_dir: Explicit data folder, searched first.
        known_elsewhere: MD5s of other datasets' files; a candidate with one of these
            MD5s is another file with the same name, skipped rather than reported.

    Returns:
        The path, or ``None`` if no candidate exists.

    Raises:
        DataCorruptError: Candidates exist but none matches the checksum.
    """
    bad = []
    for path in candidates(source, spec, data_dir):
        if not path.is_file():
            continue
        if matches(path, spec):
            return path
        if md5_of(path) not in known_elsewhere:
            bad.append(path)
    if bad:
        raise DataCorruptError(_corrupt_message(source, spec, bad[0]))
    return None


def ensure(
    source: Source,
    data_dir: str | Path | None = None,
    download: bool = True,
    known_elsewhere: frozenset[str] = frozenset(),
) -> dict[str, Path]:
    """Find every file of ``source``, downloading the absent ones if allowed.

    Args:
        source: The dataset's source.
        data_dir: Explicit data folder, searched first and used for downloads.
        download: Whether absent files may be downloaded.
        known_elsewhere: See :func:`locate`.

    Returns:
        File name -> verified path, in the order of ``source.files``.

    Raises:
        DataMissingError: A file is absent and could not be downloaded.
        DataCorruptError: A file is present but its checksum does not match, or the
            server returned a file with the wrong checksum.
    """
    paths: dict[str, Path] = {}
    missing: list[FileSpec] = []
    for spec in source.files:
        path = locate(source, spec, data_dir, known_elsewhere)
        if path is None:
            missing.append(spec)
        else:
            paths[spec.name] = path
    for i, spec in enumerate(missing):
        others = [other.name for other in missing[i + 1 :]]
        if not download:
            raise DataMissingError(_missing_message(source, spec, data_dir, None, others))
        paths[spec.name] = _download(source, spec, data_dir, others)
    return {spec.name: paths[spec.name] for spec in source.files}


def download_dir(source: Source, data_dir: str | Path | None = None) -> Path:
    """``<first writable data dir>/<folder>``, created if needed.

    Raises:
        DataMissingError: No data dir is writable.
    """
    for base in data_dirs(data_dir):
        target = base / source.folder
        try:
            target.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=target):
                return target
        except OSError:
            continue
    dirs = ", ".join(str(d) for d in data_dirs(data_dir))
    raise DataMissingError(
        f"Cannot download {source.dataset}: none of the data folders is writable ({dirs}). "
        f"Pass --data-dir or set {ENV_DATA_DIR} to a writable folder."
    )


def _download(
    source: Source, spec: FileSpec, data_dir: str | Path | None, others: list[str]
) -> Path:
    """Download ``spec`` from its URLs in turn; return the verified path."""
    target = download_dir(source, data_dir)
    failures = []
    bad_checksum = []
    for url in spec.urls:
        downloader = pooch.HTTPDownloader(progressbar=True, timeout=DOWNLOAD_TIMEOUT_S)
        try:
            path = pooch.retrieve(
                url,
                known_hash=f"md5:{spec.md5}",
                fname=spec.name,
                path=target,
                downloader=downloader,
            )
        except OSError as err:  # requests' errors derive from OSError
            failures.append(f"{url} failed ({_reason(err)})")
        except ValueError as err:  # pooch: hash mismatch; it deleted the download
            got = re.search(r"but got ([0-9a-f]{32})", str(err))
            bad_checksum.append(f"{url} served MD5 {got[1] if got else '(unknown)'}")
        else:
            return Path(path)
    if bad_checksum:
        raise DataCorruptError(
            f"The downloaded {source.dataset} file {spec.name} does not match its checksum: "
            f"expected MD5 {spec.md5}, but {'; '.join(bad_checksum)}. The download was "
            f"deleted, so {target}/ holds no copy of it. The server may hold another version "
            f"of the file: download the official one by hand and put it in {target}/."
        )
    failure = "; ".join(failures) or "no download URL is known"
    raise DataMissingError(_missing_message(source, spec, data_dir, failure, others))


def _reason(err: OSError) -> str:
    """A short reason for a failed download, without requests' nested reprs."""
    import requests  # only needed once a download failed; pooch depends on it

    if isinstance(err, requests.Timeout):
        return f"no answer within {DOWNLOAD_TIMEOUT_S:g} s"
    if isinstance(err, requests.ConnectionError):
        return "could not connect: no network, or the server is down"
    if isinstance(err, requests.HTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code} {err.response.reason}"
    return f"{type(err).__name__}: {_short(err)}"


def _short(err: Exception, limit: int = 160) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _missing_message(
    source: Source,
    spec: FileSpec,
    data_dir: str | Path | None,
    failure: str | None,
    others: list[str],
) -> str:
    looked = ", ".join(str(path.parent) + "/" for path in candidates(source, spec, data_dir))
    first = data_dirs(data_dir)[0]
    url = spec.urls[0] if spec.urls else "(no URL known)"
    why = f"Download failed: {failure}." if failure else "Downloading is off (download=False)."
    also = f" Also missing from {source.dataset}: {', '.join(others)}." if others else ""
    return (
        f"{source.dataset} data file {spec.name} was not found. Looked in: {looked}. {why} "
        f"To place it by hand, download {url} and put it in {first / source.folder}/, or "
        f"pass --data-dir / set {ENV_DATA_DIR} to a folder that holds "
        f"{source.folder}/{spec.name}; with network access, run "
        f"`autoencoders data fetch {source.dataset}`.{also}"
    )


def _corrupt_message(source: Source, spec: FileSpec, path: Path) -> str:
    expected = f"MD5 {spec.md5}"
    if spec.raw_md5:
        expected += f" (or {spec.raw_md5} for its decompressed content)"
    return (
        f"{source.dataset} data file {path} is corrupt: expected {expected}, got MD5 "
        f"{md5_of(path)}. Delete it and re-run `autoencoders data fetch {source.dataset}`, "
        f"or place the official file ({spec.urls[0] if spec.urls else spec.name}) there by hand."
    )


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """MD5 of a file; ``size`` and ``mtime_ns`` only key the cache."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _raw_digest(path: str, size: int, mtime_ns: int) -> str | None:
    """MD5 of a gzip file's decompressed bytes; ``None`` if the file is not valid gzip."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with gzip.open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return digest.hexdigest()
