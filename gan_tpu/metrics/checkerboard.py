"""Checkerboard index: how far the period-2 frequencies of images stand out of their spectrum.

Not a Kaggle figure: a diagnostic for the grid of dots that transposed convolutions leave
(Odena et al. 2016). Per image: the grey image, mean removed, Hann-windowed (so the image
border leaks no energy along the axes); its 2-D power spectrum; at each of the three
period-2 frequencies (vertical, horizontal, diagonal Nyquist bins) the power divided by
the mean power of the ring of bins around it (Chebyshev distance 2..`radius`; the bins
next to it hold the window's own spread of the peak). The index is the mean of those
three ratios over the images. A spectrum with no peak there gives about 1; real photos
are the baseline to read a model's index against (their JPEG 8x8 blocks add a little).
"""
from __future__ import annotations

import numpy as np

RADIUS = 4
CHUNK = 64  # images per FFT batch (float64 spectra of 64 x 256 x 256 images: 64 MB)


def _ring(radius: int) -> list[tuple[int, int]]:
    return [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
            if max(abs(dy), abs(dx)) >= 2]


def period2_ratios(images, radius: int = RADIUS) -> np.ndarray:
    """[N] ratios, one per image: the mean over the three period-2 bins of peak / ring mean.

    ``images``: [N, H, W, C] or [N, H, W] (any range; uint8 or float), H and W even and at
    least 2 * radius + 2.
    """
    x = np.asarray(images, np.float64)
    if x.ndim == 4:
        x = x.mean(axis=-1)
    if x.ndim != 3:
        raise ValueError(f"images must be [N, H, W, C] or [N, H, W], got shape {np.shape(images)}")
    n, h, w = x.shape
    if h % 2 or w % 2 or min(h, w) < 2 * radius + 2:
        raise ValueError(f"images must have even sides of at least {2 * radius + 2} px, got {h}x{w}")
    window = np.outer(np.hanning(h), np.hanning(w))
    ring = _ring(radius)
    out = np.empty(n)
    for start in range(0, n, CHUNK):
        part = x[start:start + CHUNK]
        part = (part - part.mean(axis=(1, 2), keepdims=True)) * window
        power = np.abs(np.fft.fft2(part)) ** 2
        ratios = []
        for fy, fx in ((h // 2, 0), (0, w // 2), (h // 2, w // 2)):
            around = np.mean([power[:, (fy + dy) % h, (fx + dx) % w] for dy, dx in ring], axis=0)
            ratios.append(power[:, fy, fx] / np.maximum(around, 1e-30))
        out[start:start + CHUNK] = np.mean(ratios, axis=0)
    return out


def checkerboard_index(images, radius: int = RADIUS) -> float:
    """The mean period-2 ratio over ``images`` (about 1: no checkerboard; see the module)."""
    return float(np.mean(period2_ratios(images, radius)))


class CheckerboardMeter:
    """The index over a stream of image batches, up to ``limit`` images (0: all)."""

    def __init__(self, limit: int = 0, radius: int = RADIUS):
        self.limit, self.radius = int(limit), radius
        self.ratios: list[np.ndarray] = []
        self.count = 0

    @property
    def full(self) -> bool:
        return bool(self.limit) and self.count >= self.limit

    def update(self, images) -> None:
        if self.full:
            return
        images = np.asarray(images)
        if self.limit:
            images = images[: self.limit - self.count]
        self.ratios.append(period2_ratios(images, self.radius))
        self.count += len(images)

    def result(self) -> float | None:
        return float(np.mean(np.concatenate(self.ratios))) if self.count else None
