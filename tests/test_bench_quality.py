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


@pytest.mark.slow  # a benchmark's smoke run, 21 s
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
    from gan_tpu import config, models

    def settings(name):
        pipeline, overrides = bench_quality.VARIANTS[name]
        cfg = config.load(pipeline, [*bench_quality._model_overrides(pipeline, 32),
                                     *(o.format(base_epochs=9) for o in overrides)])
        return {(section, key): value for section in ("data", "model") for key, value in cfg[section].items()}

    reference = settings(bench_quality.BASE)
    # pinned, so the rows mean the same whatever pipelines/cyclegan.toml ships today
    assert reference[("model", "label_smoothing")] == 0.1 and reference[("data", "augment")] is True
    assert reference[("model", "upsample")] == "transpose"  # pipelines/cyclegan.toml ships resize
    assert config.load("cyclegan")["model"]["upsample"] == "resize"
    resnet = {**models.defaults("cyclegan_resnet"), **config.load("cyclegan_resnet")["model"]}
    assert resnet["upsample"] == "transpose"  # undecided: the one-core rows got 2-10 steps
    changed = {name: sorted(k for k, v in settings(name).items() if v != reference.get(k))
               for name, (pipeline, _) in bench_quality.VARIANTS.items()
               if pipeline == "cyclegan" and name != bench_quality.BASE}
    assert changed == {
        "reference, no label smoothing": [("model", "label_smoothing")],
        "reference, no DiffAugment": [("model", "diff_augment")],
        "reference, no data augmentation": [("data", "augment")],
        "reference, lsgan loss": [("model", "adversarial")],
        "reference, image pool 50": [("model", "pool_size")],
        "reference, LR decay": [("model", "decay_start")],  # 0.5 here, 1.0 (off) in every other row
        "reference, upsample resize": [("model", "upsample")],  # the reference: transpose
        "reference, upsample antialias": [("model", "upsample")],
    }


@pytest.mark.slow  # a benchmark's smoke run, 20 s
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


def test_a_pinned_run_says_so_and_a_named_section_keeps_the_others(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_quality.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(bench_quality.os, "cpu_count", lambda: 2)
    assert bench_quality.pinning() == "taskset -c 0"
    old = "<!-- bench:quality -->\n## old table\n<!-- /bench:quality -->"
    (tmp_path / "BENCHMARKS.md").write_text(old + "\n")
    args = bench_quality.argparse.Namespace(results=str(tmp_path), benchmarks=str(tmp_path / "BENCHMARKS.md"))
    bench_quality.publish("quality-1core", ["| a | row |"], "python bench/bench_quality.py paired", 1.0, args)
    section = (tmp_path / "quality-1core.md").read_text()
    assert "pinned to 1 of them (`taskset -c 0`)" in section
    assert "Reproduce: `taskset -c 0 python bench/bench_quality.py paired`" in section
    benchmarks = (tmp_path / "BENCHMARKS.md").read_text()
    assert old in benchmarks and "<!-- bench:quality-1core -->" in benchmarks and "| a | row |" in benchmarks
    monkeypatch.setattr(bench_quality.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert bench_quality.pinning() == ""


def test_grid_checkerboard_reads_the_translation_tiles_of_a_monet_grid(tmp_path, capsys):
    rng = np.random.default_rng(3)
    side = 32
    photos = rng.uniform(60, 200, (6, side, side, 3))
    grid_of_dots = 40.0 * ((np.indices((side, side)).sum(axis=0) % 2)[..., None] - 0.5)
    translations = np.clip(rng.uniform(60, 200, (6, side, side, 3)) + grid_of_dots, 0, 255)
    grid = np.concatenate([np.concatenate([p, t], axis=1) for p, t in zip(photos, translations)], axis=0)
    path = str(tmp_path / "grid.png")
    tf.io.write_file(path, tf.io.encode_png(np.round(grid).astype(np.uint8)))
    assert bench_quality.main(["grid", "--grid", path]) == 0
    index = bench_quality.json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert index["tiles"] == 6 and index["side"] == side
    assert index["photos"] < 3.0 and index["translations"] > 50.0
    tf.io.write_file(path, tf.io.encode_png(np.zeros((100, 64, 3), np.uint8)))
    assert bench_quality.main(["grid", "--grid", path]) == 2
    assert "is not 6 rows of photo | translation tiles" in capsys.readouterr().err


def test_noise_benchmark_smoke_writes_rows_grid_and_section(tmp_path):
    real = tmp_path / "monet2photo"
    for folder, n in (("trainA", 6), ("trainB_first1200", 4), ("testB", 1)):
        os.makedirs(real / folder)
        for i, image in enumerate(_photos(n, seed=n)):
            tf.io.write_file(str(real / folder / f"{i:03d}.jpg"), tf.io.encode_jpeg(image))
    assert bench_quality.main(["noise", "--realdata", str(real), "--work", str(tmp_path / "work"),
                               "--results", str(tmp_path), "--benchmarks", str(tmp_path / "BENCHMARKS.md"),
                               "--minutes", "0.01", "--size", "16", "--width", "4", "--batch", "2",
                               "--models", "dcgan"]) == 0
    section = (tmp_path / "noise.md").read_text()
    row = next(line for line in section.splitlines() if line.startswith("| dcgan |"))
    first_step, steps, fid, kid, checkerboard = (float(v) for v in row.strip("| ").split(" | ")[1:])
    assert first_step > 0 and steps >= 2 and fid >= 0 and checkerboard > 0  # 0.6 s after the first
    assert "--models dcgan" in section and "rows top to bottom: dcgan." in section
    grid = tf.io.decode_png(tf.io.read_file(str(tmp_path / "noise_grid.png"))).numpy()
    assert grid.shape == (96, 6 * 96, 3)  # one row: 6 paintings, so 6 samples of 16 px, shown 6x
    assert "paints 6 images, scored against the 6 paintings at 16 px" in section
    assert "<!-- bench:noise -->" in (tmp_path / "BENCHMARKS.md").read_text()


def test_noise_rejects_a_translation_model(capsys):
    with pytest.raises(SystemExit):
        bench_quality.main(["noise", "--models", "cyclegan reference"])
    assert "--models: 'cyclegan reference' is not one of" in capsys.readouterr().err
