"""The checkerboard index on synthetic images with and without a period-2 pattern."""
import numpy as np
import pytest

from gan_tpu.metrics.checkerboard import (DETAIL_FLOOR, CheckerboardMeter, checkerboard_index, detail_shares,
                                         period2_ratios)


def _smooth(n=24, size=64, seed=0):
    """Blurred noise in 0..255: a smooth spectrum with no peak at the period-2 frequencies."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, size, size, 3))
    k = np.fft.fftfreq(size)
    falloff = 1.0 / (1e-3 + k[:, None] ** 2 + k[None, :] ** 2)  # 1/f^2 power, as in photos
    x = np.real(np.fft.ifft2(np.fft.fft2(x, axes=(1, 2)) * np.sqrt(falloff)[None, :, :, None], axes=(1, 2)))
    return 128 + 40 * x / x.std()


def _grid(size, kind):
    yy, xx = np.mgrid[:size, :size]
    if kind == "dots":  # one bright pixel in each 2x2 cell: transposed convs' grid
        return 4.0 * ((yy % 2 == 0) & (xx % 2 == 0)) - 1.0
    return {"rows": 2.0 * (yy % 2) - 1, "columns": 2.0 * (xx % 2) - 1, "diagonal": 2.0 * ((yy + xx) % 2) - 1}[kind]


def test_images_without_a_period2_pattern_score_about_one():
    ratios = period2_ratios(_smooth())
    assert ratios.shape == (24,)
    assert 0.3 < checkerboard_index(_smooth()) < 3.0
    assert 0.3 < checkerboard_index(np.random.default_rng(1).normal(size=(24, 64, 64))) < 3.0


@pytest.mark.parametrize("kind", ["dots", "rows", "columns", "diagonal"])
def test_a_faint_period2_pattern_stands_out(kind):
    clean = _smooth()
    # two grey levels of amplitude over a 40-level spread: faint by eye
    patterned = clean + 2.0 * _grid(64, kind)[None, :, :, None]
    assert checkerboard_index(patterned) > 15 * checkerboard_index(clean)
    assert checkerboard_index(clean + 4.0 * _grid(64, kind)[None, :, :, None]) > checkerboard_index(patterned)


def test_a_period4_pattern_and_a_flat_offset_do_not_count():
    clean = _smooth()
    yy, _ = np.mgrid[:64, :64]
    period4 = clean + 4.0 * np.cos(np.pi * yy / 2)[None, :, :, None]
    assert checkerboard_index(period4) < 3.0
    np.testing.assert_allclose(period2_ratios(clean + 50.0), period2_ratios(clean), rtol=1e-9)


def test_the_meter_streams_batches_up_to_its_limit():
    images = _smooth(10)
    meter = CheckerboardMeter(limit=7)
    for start in range(0, 10, 4):
        meter.update(images[start:start + 4].astype(np.uint8))
    assert meter.count == 7 and meter.full
    assert meter.result() == pytest.approx(checkerboard_index(images[:7].astype(np.uint8)))
    assert CheckerboardMeter().result() is None


def _upscaled(images, factor):
    """Each image reduced `factor` times (block means) and enlarged back (bilinear along each axis)."""
    n, h, w, c = images.shape
    small = images.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))
    coords = (np.arange(h) + 0.5) / factor - 0.5
    for axis in (1, 2):
        small = np.apply_along_axis(lambda v: np.interp(coords, np.arange(len(v)), v), axis, small)
    return small


def test_upscaled_images_lack_the_detail_the_index_needs():
    detailed = _smooth(size=64)
    assert np.median(detail_shares(detailed)) > 2 * DETAIL_FLOOR
    meter = CheckerboardMeter()
    meter.update(detailed)
    assert meter.measurable and meter.detail() == pytest.approx(np.median(detail_shares(detailed)))
    # painted at 16 px, shown at 64, with faint 8x8 blocks (JPEG's): a big "peak", no detail
    yy, xx = np.mgrid[:64, :64]
    blocky = _upscaled(detailed, 4) + 0.5 * ((yy % 8 == 7) | (xx % 8 == 7))[None, :, :, None]
    assert checkerboard_index(blocky) > 5 * checkerboard_index(detailed)
    assert np.median(detail_shares(blocky)) < DETAIL_FLOOR / 5
    meter = CheckerboardMeter()
    meter.update(blocky)
    assert not meter.measurable and meter.result() == pytest.approx(checkerboard_index(blocky))
    assert not CheckerboardMeter().measurable


def test_odd_or_tiny_images_are_errors():
    with pytest.raises(ValueError, match="even sides"):
        period2_ratios(np.zeros((2, 63, 64, 3)))
    with pytest.raises(ValueError, match="shape"):
        period2_ratios(np.zeros((64, 64)))
