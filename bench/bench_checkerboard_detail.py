"""Measure: the checkerboard index and the detail share (`gan_tpu.metrics.checkerboard`) of
real photos and paintings, as they are and reduced then upscaled back to 256 px, as 256 px
JPEGs at quality 95 (what `gan-tpu score` reads): the source of `DETAIL_FLOOR`.

    PYTHONPATH=. python bench/bench_checkerboard_detail.py [--realdata ../shared/realdata/monet2photo] [--count 64]

Photos: testB; paintings: testA (the first --count of each). Upscaled: area-reduced to the
size, bilinear back to 256 px, as `translator.at_size` paints a smaller run's output. Prints
a markdown table. A measurement, never a test.
"""
from __future__ import annotations

import argparse
import glob
import os

import numpy as np
import tensorflow as tf

from gan_tpu.metrics.checkerboard import DETAIL_FLOOR, spectrum_figures


def as_jpeg(images: np.ndarray, quality: int = 95) -> np.ndarray:
    pixels = np.clip(np.round(images), 0, 255).astype(np.uint8)
    return np.stack([tf.io.decode_jpeg(tf.io.encode_jpeg(im, quality=quality)).numpy() for im in pixels])


def upscaled(images: np.ndarray, size: int) -> np.ndarray:
    small = tf.image.resize(images, [size, size], method="area")
    return tf.image.resize(small, [256, 256], method="bilinear").numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", default="../shared/realdata/monet2photo")
    parser.add_argument("--count", type=int, default=64)
    args = parser.parse_args()
    print(f"| images ({args.count} each, 256 px JPEG q95) | checkerboard index | median detail share "
          f"| min detail share | reported (median >= {DETAIL_FLOOR}) |")
    print("|---|---|---|---|---|")
    for label, folder in (("photos", "testB"), ("paintings", "testA")):
        paths = sorted(glob.glob(os.path.join(args.realdata, folder, "*.jpg")))[: args.count]
        images = np.stack([tf.io.decode_jpeg(tf.io.read_file(p), channels=3).numpy() for p in paths]).astype(np.float32)
        variants = [(label, images)] + [(f"{label} from {s} px", upscaled(images, s)) for s in (192, 128, 64, 32)]
        for name, x in variants:
            ratios, details = spectrum_figures(as_jpeg(x))
            median = float(np.median(details))
            print(f"| {name} | {ratios.mean():.2f} | {median:.4f} | {details.min():.4f} | "
                  f"{'yes' if median >= DETAIL_FLOOR else 'no: not measured'} |")


if __name__ == "__main__":
    main()
