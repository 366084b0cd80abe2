"""Measure: JPEG bytes of one real 256 px image at each quality, as the submission writer
encodes it (`tf.io.encode_jpeg`, format "rgb"); the source of zipwriter's `_JPEG_BYTES`.

    PYTHONPATH=. python bench/bench_jpeg_bytes.py [--realdata ../shared/realdata/monet2photo] [--count 300]

Decodes the first --count photos (testB) and paintings (trainA) and re-encodes them; prints
the mean, median and 90th percentile per set and quality. A measurement, never a test.
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics

import tensorflow as tf

QUALITIES = (1, 75, 90, 95, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", default="../shared/realdata/monet2photo")
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    for label, folder in (("photos", "testB"), ("paintings", "trainA")):
        paths = sorted(glob.glob(os.path.join(args.realdata, folder, "*.jpg")))[: args.count]
        images = [tf.io.decode_jpeg(tf.io.read_file(p), channels=3) for p in paths]
        for quality in QUALITIES:
            sizes = sorted(len(tf.io.encode_jpeg(im, quality=quality, format="rgb").numpy()) for im in images)
            print(f"{label} ({folder}, {len(sizes)}) quality {quality}: mean {statistics.mean(sizes):,.0f} B, "
                  f"median {statistics.median(sizes):,.0f} B, p90 {sizes[int(0.9 * len(sizes))]:,} B")


if __name__ == "__main__":
    main()
