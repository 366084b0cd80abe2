"""`gan-tpu sample-data`: a small data set in exactly Kaggle's layout, made from nothing.

Pictures are procedural but picture-like: smooth structure at several scales plus texture,
so JPEG sizes and feature statistics behave like real images, not like uniform noise.
"Monet" images are soft pastel fields with directional brush strokes; "photos" are
landscapes with a sky gradient, a horizon, textured ground, hard-edged shapes and sensor
noise.
"""
from __future__ import annotations

import os

import numpy as np
from scipy import ndimage

_MONET_PALETTE = np.array([
    [118, 152, 196], [162, 190, 214], [96, 138, 102], [188, 204, 150],
    [232, 196, 180], [242, 222, 160], [150, 122, 168], [214, 150, 120],
], np.float32)
_GROUND_PALETTE = np.array([
    [62, 98, 40], [96, 124, 58], [122, 102, 70], [84, 84, 80], [150, 140, 110],
], np.float32)


def _fractal(rng: np.random.Generator, size: int, octaves=(4, 8, 16, 32), decay=0.55) -> np.ndarray:
    """Smooth noise in [0, 1]: cubic-upsampled random grids summed over scales."""
    out = np.zeros((size, size), np.float32)
    amp = 1.0
    for cells in octaves:
        grid = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
        up = ndimage.zoom(grid, size / cells, order=3)
        out += amp * up[:size, :size]
        amp *= decay
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def _strokes(rng: np.random.Generator, size: int) -> np.ndarray:
    """Directional texture like brush strokes: fine noise smeared along one angle."""
    noise = rng.standard_normal((size, size)).astype(np.float32)
    angle = rng.uniform(0, 180)
    line = np.zeros((9, 9), np.float32)
    line[4, :] = 1.0
    kernel = ndimage.rotate(line, angle, reshape=False, order=1)
    kernel /= kernel.sum()
    smeared = ndimage.convolve(noise, kernel, mode="wrap")
    return smeared / (np.abs(smeared).max() + 1e-6)


def monet_image(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """A soft, pastel, brush-textured image, uint8 [size, size, 3]."""
    colors = _MONET_PALETTE[rng.choice(len(_MONET_PALETTE), 3, replace=False)]
    w1, w2 = _fractal(rng, size), _fractal(rng, size, octaves=(2, 4, 8))
    image = (colors[0] * (1 - w1)[..., None] + colors[1] * w1[..., None]) * (1 - 0.5 * w2[..., None])
    image += colors[2] * 0.5 * w2[..., None]
    image += 28.0 * _strokes(rng, size)[..., None] * rng.uniform(0.6, 1.0, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def photo_image(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """A landscape-like photo: sky, horizon, textured ground, shapes, noise; uint8."""
    rows = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    sky_top = np.array([40, 90, 170], np.float32) + rng.uniform(-20, 20, 3)
    sky_low = np.array([170, 200, 230], np.float32) + rng.uniform(-20, 20, 3)
    image = sky_top * (1 - rows) + sky_low * rows
    image = np.broadcast_to(image, (size, size, 3)).copy()
    clouds = _fractal(rng, size, octaves=(4, 8, 16))
    image += 60.0 * np.clip(clouds - 0.55, 0, None)[..., None]
    horizon = int(size * rng.uniform(0.35, 0.65)) + (
        size * 0.06 * (_fractal(rng, size, octaves=(2, 4))[0] - 0.5)
    ).astype(int)
    ground_mask = np.arange(size)[:, None] >= horizon[None, :]
    ground = _GROUND_PALETTE[rng.integers(len(_GROUND_PALETTE))] * (
        0.6 + 0.8 * _fractal(rng, size, octaves=(8, 16, 32, 64))[..., None]
    )
    image = np.where(ground_mask[..., None], ground, image)
    for _ in range(rng.integers(1, 5)):  # hard-edged objects: buildings, trunks
        h, w = rng.integers(size // 10, size // 3, 2)
        x = rng.integers(0, size - w)
        y = max(0, int(horizon[min(x, size - 1)]) - h)
        image[y:y + h, x:x + w] = rng.uniform(30, 220, 3)
    image += rng.normal(0, 4.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _shard_counts(n: int, per_file: int = 15, max_files: int = 20) -> list[int]:
    shards = max(1, min(max_files, round(n / per_file)))
    base, extra = divmod(n, shards)
    return [base + (i < extra) for i in range(shards)]


def write_sample_data(out: str, *, monet: int = 30, photo: int = 60, size: int = 256,
                      seed: int = 0) -> dict[str, int]:
    """Write `monet_tfrec/`, `photo_tfrec/`, `monet_jpg/`, `photo_jpg/` under `out`."""
    import tensorflow as tf

    from gan_tpu.data import example_bytes
    from gan_tpu.errors import UserError

    if monet < 1 or photo < 1:
        raise UserError(f"--monet and --photo must be at least 1 (got {monet}, {photo})")
    if size < 16:
        raise UserError(f"--size {size} is too small (at least 16)")
    rng = np.random.default_rng(seed)
    written = {}
    for domain, n, make in (("monet", monet, monet_image), ("photo", photo, photo_image)):
        rec_dir, jpg_dir = os.path.join(out, f"{domain}_tfrec"), os.path.join(out, f"{domain}_jpg")
        os.makedirs(rec_dir, exist_ok=True)
        os.makedirs(jpg_dir, exist_ok=True)
        for shard, count in enumerate(_shard_counts(n)):
            final = os.path.join(rec_dir, f"{domain}{shard:02d}-{count}.tfrec")
            tmp = final + ".tmp"
            with tf.io.TFRecordWriter(tmp) as writer:
                for _ in range(count):
                    name = rng.bytes(5).hex()
                    jpeg = tf.io.encode_jpeg(make(rng, size), quality=95).numpy()
                    writer.write(example_bytes(name, jpeg, domain))
                    with open(os.path.join(jpg_dir, f"{name}.jpg"), "wb") as fh:
                        fh.write(jpeg)
            os.replace(tmp, final)
        written[domain] = n
    return written
