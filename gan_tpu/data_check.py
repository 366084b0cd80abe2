"""The data check before training: every image read once, every bad one reported in one run.

Each element goes through one map that never fails on a bad header (length, format sniffed
from the first bytes, JPEG shape) and fully decodes only images whose header is right; a
decode error is the element's own error, after which the iterator goes on, so one pass finds
every problem. Problems are worded in the user's terms: "empty file", "not a JPEG (PNG data)",
"300×200 pixels, expected 256×256", "grayscale", "truncated record 12".
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

MAX_LISTED = 20
# The first bytes of formats people save by mistake under a .jpg name.
SIGNATURES = ((b"\x89PNG", "PNG"), (b"GIF8", "GIF"), (b"BM", "BMP"), (b"RIFF", "WebP or another RIFF"),
              (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"%PDF", "PDF"), (b"<", "HTML or XML"))


class Report:
    """Problems found so far: `(where, what)` pairs, and the images that passed."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def add(self, where: str, what: str) -> None:
        self.problems.append((where, what))

    def message(self, max_listed: int = MAX_LISTED) -> str:
        """One line for one problem; else a summary line, one line per problem (the first
        `max_listed`) and a count of the rest."""
        if len(self.problems) == 1:
            return "{}: {}".format(*self.problems[0])
        lines = [f"{len(self.problems)} bad images or files (fix or remove them, then run again):"]
        lines += [f"  {where}: {what}" for where, what in self.problems[:max_listed]]
        if len(self.problems) > max_listed:
            lines.append(f"  … and {len(self.problems) - max_listed} more")
        return "\n".join(lines)


def _inspect(size: int):
    def inspect(index, pair):
        name, jpeg = pair
        length = tf.strings.length(jpeg)
        is_jpeg = tf.logical_and(length > 0, tf.io.is_jpeg(jpeg))
        shape = tf.cond(is_jpeg, lambda: tf.io.extract_jpeg_shape(jpeg), lambda: tf.constant([-1, -1, -1], tf.int32))
        right = tf.logical_and(is_jpeg, tf.reduce_all(tf.equal(shape, [size, size, 3])))
        # Decode fully only what should decode: a corrupt body fails this element alone. Its
        # shape is returned so that the decode is not pruned as unused.
        decoded = tf.cond(right, lambda: tf.shape(tf.io.decode_jpeg(jpeg, channels=3)), lambda: shape)
        return index, name, length, is_jpeg, decoded, tf.strings.substr(jpeg, 0, 4)
    return inspect


def _format(head: bytes) -> str:
    return next((kind for magic, kind in SIGNATURES if head.startswith(magic)), "not an image format gan_tpu knows")


def describe(length: int, is_jpeg: bool, shape, head: bytes, size: int, *, record: bool) -> str | None:
    """What is wrong with one image, in the user's terms; None when nothing is."""
    if length == 0:
        return "no image (the Example's 'image' feature is missing or empty)" if record else "empty file"
    if not is_jpeg:
        return f"not a JPEG ({_format(head)} data)"
    h, w, c = (int(v) for v in shape)
    wrong = []
    if (h, w) != (size, size):
        wrong.append(f"{w}×{h} pixels, expected {size}×{size}")
    if c != 3:
        wrong.append({1: "grayscale, expected RGB", 4: "CMYK, expected RGB"}.get(c, f"{c} channels, expected 3 (RGB)"))
    return "; ".join(wrong) or None


def scan(encoded: tf.data.Dataset, label: Callable[[int, bytes], str], file: str, size: int, report: Report,
         *, record: bool) -> int:
    """Check every (name, bytes) element of `encoded` once; add its problems to `report`.
    `label(index, name)` says where an element is; `file` names the unit for read errors.
    Returns the number of elements read."""
    it = iter(encoded.enumerate().map(_inspect(size), num_parallel_calls=tf.data.AUTOTUNE))
    seen, before = 0, len(report.problems)
    while True:
        try:
            index, name, length, is_jpeg, shape, head = next(it)
        except StopIteration:
            break
        except tf.errors.InvalidArgumentError:  # the decode of element `seen` failed
            report.add(label(seen, b""), "truncated or corrupt JPEG data (the header is fine, the image does not decode)")
        except tf.errors.DataLossError:
            report.add(file, f"truncated record {seen} (after {seen} good records)")
            break
        except tf.errors.OpError as err:
            report.add(file, f"unreadable ({err.message.splitlines()[0]})")
            break
        else:
            what = describe(int(length), bool(is_jpeg), shape.numpy(), head.numpy(), size, record=record)
            if what:
                report.add(label(int(index), name.numpy()), what)
        seen += 1
    if seen == 0 and len(report.problems) == before:
        report.add(file, "holds no images")
    return seen
