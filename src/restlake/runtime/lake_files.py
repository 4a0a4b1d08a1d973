"""Read-only access to the lake's files for ``restlake status``: a local folder or an S3 bucket.

Status reads small files (Delta commits and checkpoints, Spark's checkpoint offsets), so a listing
and whole-file reads are all it needs. A local lake needs nothing beyond the standard library; an
``s3a://`` (or ``s3://``) lake is read with pyarrow's S3 client, configured from ``S3Settings``
(the same endpoint and keys the stream job's s3a connector uses), not with a JVM.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from restlake.errors import RestlakeError
from restlake.settings import S3Settings

_S3_SCHEMES = ("s3a", "s3")


class LakeFilesError(RestlakeError):
    """The lake cannot be read from here; the message says which location and why."""


class LakeFiles(abc.ABC):
    """Files below one root, addressed by paths relative to it (``_delta_log/…``)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @abc.abstractmethod
    def names(self, folder: str) -> list[str] | None:
        """Names of the files directly in ``folder``; None when there is no such folder."""

    @abc.abstractmethod
    def read_bytes(self, path: str) -> bytes:
        """The whole content of the file at ``path``; OSError when it cannot be read."""

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def where(self, path: str) -> str:
        """``path`` as a location a person can look up, for error messages."""
        return f"{self.uri.rstrip('/')}/{path}"


class LocalFiles(LakeFiles):
    def __init__(self, uri: str, root: Path) -> None:
        super().__init__(uri)
        self.root = root

    def names(self, folder: str) -> list[str] | None:
        where = self.root / folder
        if not where.is_dir():
            return None
        return [entry.name for entry in where.iterdir() if entry.is_file()]

    def read_bytes(self, path: str) -> bytes:
        return (self.root / path).read_bytes()


class S3Files(LakeFiles):
    """Objects under ``bucket/prefix`` through pyarrow's S3 filesystem."""

    def __init__(self, uri: str, filesystem: Any, base: str) -> None:
        super().__init__(uri)
        self._fs = filesystem
        self._base = base.rstrip("/")

    def names(self, folder: str) -> list[str] | None:
        from pyarrow import fs

        # S3 has no folders: one that holds no object does not exist.
        infos = self._fs.get_file_info(fs.FileSelector(f"{self._base}/{folder}", allow_not_found=True))
        found = [info.base_name for info in infos if info.type == fs.FileType.File]
        return found or None

    def read_bytes(self, path: str) -> bytes:
        with self._fs.open_input_stream(f"{self._base}/{path}") as stream:
            return bytes(stream.read())


def lake_files(uri: str, *, timeout: float = 5.0, s3: S3Settings | None = None) -> LakeFiles:
    """The reader for ``uri``: a local path or ``file://`` URI, or an ``s3a://``/``s3://`` URI."""
    parts = urlsplit(uri)
    if "://" not in uri or parts.scheme == "file":
        return LocalFiles(uri, Path(parts.path if parts.scheme == "file" else uri))
    if parts.scheme not in _S3_SCHEMES:
        raise LakeFilesError(f"{uri}: status reads local and s3a:// lakes, not {parts.scheme}://")
    if not parts.netloc:
        raise LakeFilesError(f"{uri}: no bucket in the URI")
    return S3Files(uri, _s3_filesystem(s3 or S3Settings(), timeout), parts.netloc + parts.path)


def _s3_filesystem(settings: S3Settings, timeout: float) -> Any:
    try:
        from pyarrow import fs
    except ImportError as exc:  # the base install: no pyarrow without restlake-jobs-spark
        raise LakeFilesError(
            "reading an s3a:// lake needs pyarrow (pip install restlake-jobs-spark)"
        ) from exc
    options: dict[str, Any] = {}
    if settings.endpoint:
        endpoint = urlsplit(settings.endpoint)
        options.update(endpoint_override=endpoint.netloc or endpoint.path, scheme=endpoint.scheme or "https")
    return fs.S3FileSystem(
        access_key=settings.access_key.get_secret_value(),
        secret_key=settings.secret_key.get_secret_value(),
        region=settings.region,
        force_virtual_addressing=not settings.path_style_access,
        connect_timeout=timeout,
        request_timeout=timeout,
        # A glance, not a job: an unreachable store is reported after one try, not after retries.
        retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=1),
        **options,
    )
