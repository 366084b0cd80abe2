"""Checkerboard index: how far the period-2 frequencies of images stand out of their spectrum.

Not a Kaggle figure: a diagnostic for the grid of dots that transposed convolutions leave
(Odena et al. 2016). Per image: the grey image, mean removed, Hann-windowed (so the image
border leaks no energy along the axes); its 2-D power spectrum; at each of the three
period-2 frequencies (vertical, horizontal, diagonal Nyquist bins) the power divided by
the mean power of the ring of bins around it (Chebyshev distance 2..`radius`; the bins
next to it hold the window's own spread of the peak). The index is the mean of those
three ratios over the images. A spectrum with no peak there gives about 1; real photos
are the baseline to read a model's index against (their JPEG 8x8 blocks add a little).

The index needs detail at the pixel scale: in images painted below 256 px and upscaled
there is almost none, and JPEG's 8x8 blocks (whose harmonics include the period-2 bins)
then make the peak. Measured on 64 photos of monet2photo, as 256 px JPEGs at quality 95:
index 2.3 as they are, 13 when first reduced to 128 px and upscaled, 44 from 32 px. So the
share of each image's (windowed) power at periods under 4 px is measured too
(`detail_shares`: photos' median 0.039, Monet's 0.050, those upscales' 0.0015 and 0.0001,
from 192 px 0.005 with an index of 5.1; `bench/bench_checkerboard_detail.py`, BENCHMARKS.md);
below a median of `DETAIL_FLOOR` the index is not reported (`CheckerboardMeter.measurable`).
"""
from __future__ import annotations

import numpy as np

RADIUS = 4
CHUNK = 64  # images per FFT batch (float64 spectra of 64 x 256 x 256 images: 64 MB)
DETAIL_FLOOR = 0.01  # the median share of power at periods under 4 px the index needs


def _ring(radius: int) -> list[tuple[int, int]]:
    return [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
            if max(abs(dy), abs(dx)) >= 2]


def period2_ratios(images, radius: int = RADIUS) -> np.ndarray:
    """[N] ratios, one per image: the mean over the three period-2 bins of peak / ring mean.

    ``images``: [N, H, W, C] or [N, H, W] (any range; uint8 or float), H and W even and at
    least 2 * radius + 2.
    """
    return spectrum_figures(images, radius)[0]


def detail_shares(images) -> np.ndarray:
    """[N] shares of each image's power (grey, mean removed, Hann-windowed) at periods under
    4 px in either direction: how much pixel-scale detail the index has to stand out of."""
    return spectrum_figures(images)[1]


def spectrum_figures(images, radius: int = RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """(period-2 ratios, detail shares), one of each per image, from one FFT per image."""
    x = np.asarray(images, np.float64)
    if x.ndim == 4:
        x = x.mean(axis=-1)
    if x.ndim != 3:
        raise ValueError(f"images must be [N, H, W, C] or [N, H, W], got shape {np.shape(images)}")
    n, h, w = x.shape
    if h % 2 or w % 2 or min(h, w) < 2 * radius + 2:
        raise ValueError(f"images must have even sides of at least {2 * radius + 2} px, got {h}x{w}")
    window = np.outer(np.hanning(h), np.hanning(w))
    fine = np.maximum(np.abs(np.fft.fftfreq(h))[:, None], np.abs(np.fft.fftfreq(w))[None, :]) > 0.25
    ring = _ring(radius)
    out, detail = np.empty(n), np.empty(n)
    for start in range(0, n, CHUNK):
        part = x[start:start + CHUNK]
        part = (part - part.mean(axis=(1, 2), keepdims=True)) * window
        power = np.abs(np.fft.fft2(part)) ** 2
        ratios = []
        for fy, fx in ((h // 2, 0), (0, w // 2), (h // 2, w // 2)):
            around = np.mean([power[:, (fy + dy) % h, (fx + dx) % w] for dy, dx in ring], axis=0)
            ratios.append(power[:, fy, fx] / np.maximum(around, 1e-30))
        out[start:start + CHUNK] = np.mean(ratios, axis=0)
        detail[start:start + CHUNK] = power[:, fine].sum(axis=1) / np.maximum(power.sum(axis=(1, 2)), 1e-30)
    return out, detail


def checkerboard_index(images, radius: int = RADIUS) -> float:
    """The mean period-2 ratio over ``images`` (about 1: no checkerboard; see the module)."""
    return float(np.mean(period2_ratios(images, radius)))


class CheckerboardMeter:
    """The index over a stream of image batches, up to ``limit`` images (0: all)."""

    def __init__(self, limit: int = 0, radius: int = RADIUS):
        self.limit, self.radius = int(limit), radius
        self.ratios: list[np.ndarray] = []
        self.details: list[np.ndarray] = []
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
        ratios, details = spectrum_figures(images, self.radius)
        self.ratios.append(ratios)
        self.details.append(details)
        self.count += len(images)

    def result(self) -> float | None:
        return float(np.mean(np.concatenate(self.ratios))) if self.count else None

    def detail(self) -> float | None:
        """The median detail share (see `detail_shares`)."""
        return float(np.median(np.concatenate(self.details))) if self.count else None

    @property
    def measurable(self) -> bool:
        """Whether the images have the pixel-scale detail the index needs (`DETAIL_FLOOR`)."""
        return bool(self.count) and self.detail() >= DETAIL_FLOOR
