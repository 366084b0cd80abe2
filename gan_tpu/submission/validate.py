"""Check an ``images.zip`` against the competition's rules: ``gan-tpu validate images.zip``.

Checks: the member count is in range (7,000-10,000 by default); every member is a
file at the zip root (no folders, no ``..``, ``/`` or ``\\``) named ``*.jpg`` or
``*.jpeg``; no name appears twice; every member is JPEG data (not, say, a PNG under a
``.jpg`` name) that decodes completely (a truncated file fails) to 256x256x3; no two
members are byte-identical; and the total size is sane.

Reading, hashing and decoding run on a thread pool (one zip handle per thread, eager
``tf.io.decode_jpeg``; TensorFlow and hashlib release the GIL), keeping only the
members in flight in memory: 10,000 members take a few seconds on two cores.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from gan_tpu.errors import UserError
from gan_tpu.submission.zipwriter import check_member_name

MIN_COUNT = 7_000
MAX_COUNT = 10_000
IMAGE_SHAPE = (256, 256, 3)
MIN_MEMBER_BYTES = 256  # a flat grey 256x256 JPEG is ~1.6 KB; anything this small is not an image
MAX_TOTAL_BYTES = 2 * 1024**3  # 10,000 members at quality 100 stay far below this
MAX_LISTED = 20
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass
class ValidationReport:
    """What :func:`validate_zip` found: ``ok`` is True when ``problems`` is empty."""

    path: str
    count: int = 0
    total_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    min_count: Optional[int] = MIN_COUNT
    max_count: Optional[int] = MAX_COUNT

    @property
    def ok(self) -> bool:
        return not self.problems

    def verdict(self) -> str:
        size = f"{self.total_bytes / 1e6:.1f} MB"
        if self.ok:
            return f"VALID: {self.path}: {self.count} JPEG images, 256x256x3, {size}"
        n = len(self.problems)
        return f"INVALID: {self.path}: {n} problem{'s' if n != 1 else ''} ({self.count} members, {size})"

    def lines(self, max_listed: int = MAX_LISTED) -> list[str]:
        """The verdict line, then one line per problem, capped with an '... and N more' line."""
        out = [self.verdict()]
        out += [f"  {p}" for p in self.problems[:max_listed]]
        if len(self.problems) > max_listed:
            out.append(f"  … and {len(self.problems) - max_listed} more")
        return out


def _check_image(data: bytes) -> tuple[bytes, Optional[str]]:
    """(hash, problem or None) for one member's bytes. Runs on worker threads."""
    import tensorflow as tf

    digest = hashlib.blake2b(data, digest_size=16).digest()
    if len(data) < MIN_MEMBER_BYTES:
        return digest, f"too small to be an image ({len(data)} bytes)"
    if not data.startswith(_JPEG_MAGIC):
        kind = "PNG" if data.startswith(b"\x89PNG") else "GIF" if data[:4] == b"GIF8" else "unknown"
        return digest, f"not JPEG data ({kind} data)"
    try:
        shape = tuple(tf.io.decode_jpeg(data, channels=0).shape)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
        msg = str(err).split("[Op:")[0].split("}}")[-1].strip() or type(err).__name__
        return digest, f"does not decode as a JPEG (truncated or corrupt: {msg})"
    if shape != IMAGE_SHAPE:
        return digest, "decodes to {}, not 256x256x3".format("x".join(str(d) for d in shape))
    return digest, None


def validate_zip(
    path: str | os.PathLike,
    *,
    min_count: Optional[int] = MIN_COUNT,
    max_count: Optional[int] = MAX_COUNT,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    workers: Optional[int] = None,
) -> ValidationReport:
    """Check the zip at ``path``; returns a report listing every problem found.

    ``min_count``/``max_count`` of None turn that bound off. Raises
    :class:`UserError` only when ``path`` is missing or is not a zip at all.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"zip not found: {path}")
    if os.path.isdir(path):
        raise UserError(f"is a directory, not a zip: {path}")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise UserError(f"not a zip file: {path} ({err})") from err
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from err

    report = ValidationReport(path=path, min_count=min_count, max_count=max_count)
    problems = report.problems
    with zf:
        infos = zf.infolist()
        seen_names: set[str] = set()
        images: list[zipfile.ZipInfo] = []
        for info in infos:
            name = info.filename
            if info.is_dir():
                problems.append(f"{name}: is a folder (members must sit at the zip root)")
                continue
            report.count += 1
            report.total_bytes += info.file_size
            why = check_member_name(name)
            if why:
                problems.append(f"{name}: {why}")
                continue
            if name in seen_names:
                problems.append(f"{name}: duplicate name")
                continue
            seen_names.add(name)
            if not name.lower().endswith((".jpg", ".jpeg")):
                problems.append(f"{name}: not named *.jpg")
            images.append(info)

        n = report.count
        if min_count is not None and n < min_count:
            problems.insert(0, f"count: {n} images, fewer than {min_count:,}")
        if max_count is not None and n > max_count:
            problems.insert(0, f"count: {n} images, more than {max_count:,}")
        if n == 0:
            problems.insert(0, "count: the zip holds no images")
        if report.total_bytes > max_total_bytes:
            problems.append(f"total size: {report.total_bytes / 1e6:.0f} MB, over {max_total_bytes / 1e6:.0f} MB")

        first_by_hash: dict[bytes, str] = {}
        workers = workers or min(8, (os.cpu_count() or 2) + 2)
        local = threading.local()
        opened: list[zipfile.ZipFile] = []

        def check(info: zipfile.ZipInfo) -> tuple[Optional[bytes], Optional[str]]:
            handle = getattr(local, "zip", None)
            if handle is None:  # one handle per thread: reads do not queue on one file lock
                handle = local.zip = zipfile.ZipFile(path)
                opened.append(handle)
            try:
                data = handle.read(info)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
                return None, f"cannot be read from the zip ({err})"
            return _check_image(data)

        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for info, (digest, why) in zip(images, pool.map(check, images, chunksize=16)):
                    if why:
                        problems.append(f"{info.filename}: {why}")
                    if digest is None:
                        continue
                    other = first_by_hash.setdefault(digest, info.filename)
                    if other != info.filename:
                        problems.append(f"{info.filename}: byte-identical to {other}")
        finally:
            for handle in opened:
                handle.close()
    return report


def check_zip(path: str | os.PathLike, **kwargs) -> ValidationReport:
    """:func:`validate_zip`, raising :class:`UserError` (with the first problems) when invalid."""
    report = validate_zip(path, **kwargs)
    if not report.ok:
        shown = "; ".join(report.problems[:3])
        more = f"; … and {len(report.problems) - 3} more" if len(report.problems) > 3 else ""
        raise UserError(f"{report.verdict()}: {shown}{more}")
    return report


def count_bounds(args: argparse.Namespace) -> tuple[Optional[int], Optional[int]]:
    """(min_count, max_count) from ``--allow-any-count`` / ``--min-count`` / ``--max-count``."""
    if getattr(args, "allow_any_count", False):
        return 1, None
    lo, hi = args.min_count, args.max_count
    if lo > hi:
        raise UserError(f"--min-count {lo} is greater than --max-count {hi}")
    return lo, hi


def add_count_args(parser: argparse.ArgumentParser) -> None:
    """The count options shared by ``validate``, ``generate`` and ``submit``."""
    parser.add_argument("--allow-any-count", action="store_true",
                        help="accept any number of images (for demos; Kaggle wants 7,000-10,000)")
    parser.add_argument("--min-count", type=int, default=MIN_COUNT, metavar="N",
                        help=f"fewest images accepted (default {MIN_COUNT})")
    parser.add_argument("--max-count", type=int, default=MAX_COUNT, metavar="N",
                        help=f"most images accepted (default {MAX_COUNT})")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "validate",
        help="check an images.zip against the competition's rules",
        description="Check a submission zip: image count, JPEG 256x256x3 members at the root, "
        "no duplicates. Exit status 0 when valid, 1 when not.",
    )
    p.add_argument("zip", help="the zip to check, e.g. images.zip")
    add_count_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    lo, hi = count_bounds(args)
    report = validate_zip(args.zip, min_count=lo, max_count=hi)
    print("\n".join(report.lines()), flush=True)
    return 0 if report.ok else 1
