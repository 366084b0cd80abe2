"""Smoke checks of the quality benchmark: the painterly filter and one tiny paired run."""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import bench_quality  # noqa: E402
from painterly import painterly  # noqa: E402
from gan_tpu.sample_data import photo_image  # noqa: E402


def _photos(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([photo_image(rng) for _ in range(n)])


def test_painterly_filter_is_deterministic_and_painterly():
    photos = _photos(2)
    a, b = painterly(tf.constant(photos)).numpy(), painterly(tf.constant(photos)).numpy()
    assert a.shape == photos.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    # smoothing + palette: fewer distinct colours and less pixel-to-pixel noise than the photo
    assert len(np.unique(a[0].reshape(-1, 3), axis=0)) < len(np.unique(photos[0].reshape(-1, 3), axis=0))
    assert 2.0 < np.abs(a.astype(int) - photos.astype(int)).mean() < 60.0


def test_paired_benchmark_smoke(tmp_path, capsys):
    real = tmp_path / "monet2photo"
    for folder, n in (("trainB_first1200", 8), ("testB", 4)):
        os.makedirs(real / folder)
        for i, image in enumerate(_photos(n, seed=n)):
            tf.io.write_file(str(real / folder / f"{i:03d} x.jpg"), tf.io.encode_jpeg(image))
    args = ["paired", "--realdata", str(real), "--work", str(tmp_path / "work"), "--results", str(tmp_path),
            "--minutes", "0.05", "--size", "32", "--width", "4", "--batch", "2",
            "--test-count", "4", "--models", "reference, LR decay", "--benchmarks", str(tmp_path / "BENCHMARKS.md")]
    assert bench_quality.main(args) == 0
    table = (tmp_path / "quality.md").read_text()
    assert "| identity (photo unchanged) | 1 | 0 |" in table
    assert "| KID (tiny) | checkerboard |" in table
    identity = next(line for line in table.splitlines() if line.startswith("| identity"))
    assert float(identity.strip("| ").split(" | ")[-1]) > 0  # the photos' own checkerboard index
    # the decay row needs the base row's length, so asking for it alone runs the base too
    assert "| cyclegan reference | 1 |" in table and "| reference, LR decay | 1 |" in table
    capsys.readouterr()
    # finished rows are kept: a rerun (e.g. after an interruption) trains nothing again
    assert bench_quality.main(args) == 0
    out = capsys.readouterr().out
    assert out.count("kept from") == 2 and "training cyclegan" not in out
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert [line for line in (tmp_path / "quality.md").read_text().splitlines() if line.startswith("| ")] == rows
    # and the same section, between its markers, in BENCHMARKS.md
    benchmarks = (tmp_path / "BENCHMARKS.md").read_text()
    assert benchmarks.startswith("# Benchmarks") and "<!-- bench:quality -->" in benchmarks
    assert all(line in benchmarks for line in rows)


def test_missing_realdata_is_a_clear_error(tmp_path, capsys):
    assert bench_quality.main(["paired", "--realdata", str(tmp_path), "--work", str(tmp_path)]) == 2
    assert "no monet2photo images" in capsys.readouterr().err


def test_each_cyclegan_row_changes_one_thing_from_the_reference():
    from gan_tpu import config

    def settings(name):
        pipeline, overrides = bench_quality.VARIANTS[name]
        cfg = config.load(pipeline, [*bench_quality._model_overrides(pipeline, 32),
                                     *(o.format(base_epochs=9) for o in overrides)])
        return {(section, key): value for section in ("data", "model") for key, value in cfg[section].items()}

    reference = settings(bench_quality.BASE)
    # pinned, so the rows mean the same whatever pipelines/cyclegan.toml ships today
    assert reference[("model", "label_smoothing")] == 0.1 and reference[("data", "augment")] is True
    changed = {name: sorted(k for k, v in settings(name).items() if v != reference.get(k, "transpose" if k == ("model", "upsample") else None))
               for name, (pipeline, _) in bench_quality.VARIANTS.items()
               if pipeline == "cyclegan" and name != bench_quality.BASE}
    assert changed == {
        "reference, no label smoothing": [("model", "label_smoothing")],
        "reference, no DiffAugment": [("model", "diff_augment")],
        "reference, no data augmentation": [("data", "augment")],
        "reference, lsgan loss": [("model", "adversarial")],
        "reference, image pool 50": [("model", "pool_size")],
        "reference, LR decay": [("model", "decay_start")],  # 0.5 here, 1.0 (off) in every other row
        "reference, upsample resize": [("model", "upsample")],  # the reference: the default, transpose
        "reference, upsample antialias": [("model", "upsample")],
    }


def test_monet_run_smoke_writes_grid_scores_and_section(tmp_path):
    real = tmp_path / "monet2photo"
    for folder, n in (("trainA", 4), ("trainB_first1200", 4), ("testA", 6), ("testB", 6)):
        os.makedirs(real / folder)
        for i, image in enumerate(_photos(n, seed=len(folder) + n)):
            tf.io.write_file(str(real / folder / f"{i:03d}.jpg"), tf.io.encode_jpeg(image))
    assert bench_quality.main(["monet", "--realdata", str(real), "--work", str(tmp_path / "work"),
                               "--results", str(tmp_path), "--benchmarks", str(tmp_path / "BENCHMARKS.md"),
                               "--minutes", "0.05", "--size", "32", "--width", "4", "--batch", "2",
                               "--test-count", "6"]) == 0
    grid = tf.io.decode_png(tf.io.read_file(str(tmp_path / "monet_grid.png"))).numpy()
    assert grid.shape == (6 * 256 // 2, 2 * 256 // 2, 3)  # 6 rows of photo | translation, halved
    section = (tmp_path / "monet.md").read_text()
    assert "FID:" in section and "6 generated, 6 reference" in section
    assert "<!-- bench:monet -->" in (tmp_path / "BENCHMARKS.md").read_text()
