"""Stream JPEG members into a zip that appears under its final name only once it is valid.

The zip is written under a temporary name in the destination directory (same file
system, so the final ``os.replace`` is atomic). It is renamed to its final name only
after every member is written, the file is flushed to disk and a caller-supplied
validation passes. Any exception on the way -- a full disk (:class:`DiskFull`, a
one-line error), a failed validation, a Ctrl-C -- removes the temporary file, and an
existing good zip under the final name is left untouched. A process killed outright
(SIGKILL) can leave a ``.<name>.*.partial`` file behind, never a half-written ``images.zip``.
:func:`check_free_space` refuses up front a disk too small for the estimated zip.

Members are stored (``ZIP_STORED``): JPEG data does not compress further.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
import zipfile
from typing import BinaryIO, Callable, Iterable, Optional

from gan_tpu.errors import UserError

Validator = Callable[[str], None]
FileWrapper = Callable[[BinaryIO], BinaryIO]

# Mean JPEG bytes of one 256 px image by quality, as the writer encodes it (tf.io.encode_jpeg,
# format="rgb"): measured on 300 photos (monet2photo testB) and 300 paintings (trainA), decoded
# and re-encoded (bench/bench_jpeg_bytes.py); the two sets' means differ by under 10 %, so
# this is their average. A 10,000-image zip at quality 95 is ~330 MB. Generated images are
# often smoother (smaller), so this errs toward refusing a tight disk; a disk that fills
# anyway is DiskFull while writing.
_JPEG_BYTES = ((1, 1_900), (75, 15_000), (90, 23_700), (95, 32_600), (100, 57_000))
_MEMBER_BYTES = 100  # local header + central directory entry of an "N.jpg" member


class DiskFull(UserError, OSError):
    """No space left while writing the zip (an OSError with its errno, and a UserError)."""

    def __init__(self, code: int, message: str):
        OSError.__init__(self, code, message)

    def __str__(self) -> str:
        return self.strerror


def estimated_zip_bytes(count: int, quality: int) -> int:
    """About how large a zip of ``count`` generated JPEGs at ``quality`` will be (see _JPEG_BYTES)."""
    for (q0, b0), (q1, b1) in zip(_JPEG_BYTES, _JPEG_BYTES[1:]):
        if quality <= q1:
            per_image = b0 + (b1 - b0) * (max(quality, q0) - q0) / (q1 - q0)
            break
    else:
        per_image = _JPEG_BYTES[-1][1]
    return int(count * (per_image + _MEMBER_BYTES))


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n < 1e7 else f"{n / 1e6:,.0f} MB"


def _output_directory(path: str) -> str:
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise UserError(f"output directory does not exist: {directory}")
    return directory


def check_free_space(path: str | os.PathLike, count: int, quality: int) -> None:
    """Refuse (one line: needed vs free, the folder) when the disk of ``path`` has less free
    space than the estimated zip of ``count`` images needs."""
    path = os.path.abspath(os.fspath(path))
    directory = _output_directory(path)
    needed = estimated_zip_bytes(count, quality)
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise UserError(f"{directory}: not enough free space for {os.path.basename(path)}: about "
                        f"{_mb(needed)} needed ({count:,} images at JPEG quality {quality}), "
                        f"{_mb(free)} free")


def check_member_name(name: str) -> Optional[str]:
    """Why ``name`` cannot be a member at the zip root, or None when it can."""
    if not name:
        return "empty name"
    if "/" in name or "\\" in name:
        return "has a path part ('/' or '\\')"
    if name in (".", ".."):
        return "is a path part"
    if ":" in name:
        return "has a drive or stream part (':')"
    if any(ord(c) < 32 for c in name):
        return "has a control character"
    return None


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask is process-wide, not thread-safe)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class ZipStreamWriter:
    """Write members one at a time into ``path``; publish atomically on :meth:`commit`.

    Use as a context manager::

        with ZipStreamWriter("out/images.zip", validate=check) as zw:
            for i, jpeg in enumerate(jpegs, 1):
                zw.add(f"{i}.jpg", jpeg)
            zw.commit()          # validate the temporary file, then rename it

    Leaving the ``with`` block without :meth:`commit` (an exception, or simply not
    calling it) removes the temporary file.

    Args:
      path: the final zip path. Its directory must exist.
      validate: called with the temporary file's path after it is complete and
        closed; raise (e.g. :class:`~gan_tpu.errors.UserError`) to refuse it.
      file_wrapper: wraps the raw temporary file object (tests inject a disk that
        fills up; the file must stay seekable).
      date_time: the members' timestamp (defaults to now).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        validate: Optional[Validator] = None,
        file_wrapper: Optional[FileWrapper] = None,
        date_time: Optional[tuple] = None,
    ):
        self.path = os.path.abspath(os.fspath(path))
        self._validate = validate
        self._file_wrapper = file_wrapper
        self._date_time = tuple(date_time or time.localtime()[:6])
        self._names: set[str] = set()
        self._raw: Optional[BinaryIO] = None
        self._zip: Optional[zipfile.ZipFile] = None
        self.tmp_path: Optional[str] = None
        self.count = 0
        self.bytes_written = 0
        self.committed = False

    # -- lifecycle -----------------------------------------------------------------
    def open(self) -> "ZipStreamWriter":
        directory, base = os.path.split(self.path)
        if not base:
            raise UserError(f"not a file name for the zip: {self.path}")
        _output_directory(self.path)
        if os.path.isdir(self.path):
            raise UserError(f"output path is a directory: {self.path}")
        try:
            fd, self.tmp_path = tempfile.mkstemp(prefix=f".{base}.", suffix=".partial", dir=directory)
        except OSError as err:
            raise UserError(f"cannot create a file in {directory}: {err.strerror or err}") from err
        try:
            raw = os.fdopen(fd, "w+b")
            self._raw = raw
            target = self._file_wrapper(raw) if self._file_wrapper else raw
            self._zip = zipfile.ZipFile(target, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
        except BaseException:
            self.abort()
            raise
        return self

    def __enter__(self) -> "ZipStreamWriter":
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed:
            self.abort()

    def add(self, name: str, data: bytes) -> None:
        """Append one member (stored, not compressed). Names must be unique and plain."""
        if self._zip is None:
            raise RuntimeError("ZipStreamWriter is not open")
        why = check_member_name(name)
        if why:
            raise ValueError(f"bad zip member name {name!r}: {why}")
        if name in self._names:
            raise ValueError(f"duplicate zip member name {name!r}")
        info = zipfile.ZipInfo(name, date_time=self._date_time)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        try:
            self._zip.writestr(info, bytes(data))
        except BaseException as err:
            self._fail(err)
        self._names.add(name)
        self.count += 1
        self.bytes_written += len(data)

    def commit(self) -> str:
        """Finish the zip, fsync it, validate it, then rename it to its final name."""
        if self._zip is None or self.tmp_path is None:
            raise RuntimeError("ZipStreamWriter is not open")
        try:
            self._zip.close()  # writes the central directory: may also hit a full disk
            self._zip = None
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            self._raw = None
            os.chmod(self.tmp_path, 0o666 & ~_umask())
            if self._validate is not None:
                self._validate(self.tmp_path)
            os.replace(self.tmp_path, self.path)
        except BaseException as err:
            self._fail(err)
        self.tmp_path = None
        self.committed = True
        _fsync_dir(os.path.dirname(self.path))
        return self.path

    def _fail(self, err: BaseException):
        """Abort, and re-raise ``err``; a full disk as a one-line :class:`DiskFull`."""
        self.abort()
        if isinstance(err, OSError) and not isinstance(err, DiskFull) \
                and err.errno in (errno.ENOSPC, errno.EDQUOT):
            name = os.path.basename(self.path)
            raise DiskFull(err.errno, f"{os.path.dirname(self.path)}: no space left on the disk after "
                                      f"{self.count:,} images ({_mb(self.bytes_written)}) of {name}; "
                                      f"{name} was not written (free some space or write elsewhere)"
                           ) from None
        raise err

    def abort(self) -> None:
        """Close and remove the temporary file; never touches the final path."""
        zf, self._zip = self._zip, None
        raw, self._raw = self._raw, None
        if zf is not None:
            try:
                zf.close()
            except BaseException:  # noqa: BLE001 - the disk may be full; we delete anyway
                pass
        if raw is not None:
            try:
                raw.close()
            except BaseException:  # noqa: BLE001
                pass
        tmp, self.tmp_path = self.tmp_path, None
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_zip(
    path: str | os.PathLike,
    members: Iterable[tuple[str, bytes]],
    *,
    validate: Optional[Validator] = None,
    file_wrapper: Optional[FileWrapper] = None,
) -> str:
    """Write ``(name, bytes)`` pairs into ``path`` atomically; returns the final path."""
    with ZipStreamWriter(path, validate=validate, file_wrapper=file_wrapper) as zw:
        for name, data in members:
            zw.add(name, data)
        return zw.commit()
