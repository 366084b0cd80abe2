"""End of a run: the budget-bound `run` command, the NaN guard's restore, `generate` from a run."""
import os
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import cli, config, train
from gan_tpu.sample_data import write_sample_data
from tests.test_budget import FakeClock, StepTime

TINY = ['model.generator="resnet"', "model.ngf=4", "model.ndf=4", "model.n_blocks=1",
        "data.image_size=32", "train.batch_size=2", "train.samples=2"]


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data"))
    write_sample_data(root, monet=4, photo=6, seed=2)
    return root


@pytest.fixture(scope="module")
def trained_run(sample_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run") / "run")
    cfg = config.load("demo", [f'data.monet="{sample_root}"', f'data.photo="{sample_root}"', *TINY,
                               "train.epochs=1", "train.steps_per_epoch=2", f'output.dir="{out}"'])
    train.train(cfg, verbose=0)
    return out


def _set(items):
    return [arg for item in items for arg in ("--set", item)]


def test_run_stops_training_to_keep_the_budget_and_leaves_a_valid_zip(sample_root, tmp_path, monkeypatch, capsys,
                                                                      caplog):
    # On a fake clock each training step takes 5 s and timed generation none, so the reserve is
    # its fixed 60 s: with a 100 s budget the guard stops after step 7, the first whose next
    # step would end past it (35 + 60 + 5 > 100), and `run` still writes and scores the zip.
    clock, runs, real_train = FakeClock(), [], train.train

    def train_on_the_fake_clock(cfg, **kwargs):
        runs.append(real_train(cfg, clock=clock, callbacks=[StepTime(clock, 5.0)], **kwargs))
        return runs[-1]

    monkeypatch.setattr(train, "train", train_on_the_fake_clock)
    assert cli.main(["run", "demo", "--out", str(tmp_path / "run"),
                     *_set([f'data.monet="{sample_root}"', f'data.photo="{sample_root}"', *TINY,
                            "train.epochs=4", "train.steps_per_epoch=5", f"budget.hours={100 / 3600}",
                            'score.extractor="tiny"'])]) == 0
    out = capsys.readouterr().out
    assert "training stopped early to keep the budget" in out
    assert "MiFID:" in out  # scored, as [score] asks
    assert "stopping after step 7" in caplog.text
    assert int(runs[0].step.numpy()) == 7 and clock.t == 35.0
    with zipfile.ZipFile(tmp_path / "run" / "images.zip") as zf:
        assert len(zf.namelist()) == 6
    epochs_done = len(open(tmp_path / "run" / "history.csv").read().splitlines()) - 1
    assert epochs_done == 2  # 5 steps, then 2 of the second epoch


class _PoisonAfter(keras.callbacks.Callback):
    """Make the generator's weights NaN after `step` steps: the next losses are NaN."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.players[0].optimizer.iterations) == self.step:
            for v in self.model.g_monet.trainable_variables:
                v.assign(tf.fill(v.shape, np.nan))


def test_nan_guard_stops_and_restores_the_last_good_checkpoint(sample_root, tmp_path):
    cfg = config.load("demo", [f'data.monet="{sample_root}"', f'data.photo="{sample_root}"', *TINY,
                               "train.epochs=3", "train.steps_per_epoch=2", "train.checkpoint_every=1",
                               f'output.dir="{tmp_path / "run"}"'])
    run = train.train(cfg, callbacks=[_PoisonAfter(3)], verbose=0)
    assert run.diverged is not None and "is nan at step 4: training diverged" in run.diverged
    assert int(run.step.numpy()) == 3  # back at the last good checkpoint
    assert all(np.isfinite(v.numpy()).all() for v in run.model.g_monet.trainable_variables)
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-3")


def test_generate_from_a_run_and_from_its_exported_generator(trained_run, sample_root, tmp_path, capsys):
    out = str(tmp_path / "a.zip")
    assert cli.main(["generate", "--run", trained_run, "--out", out, "--allow-any-count", "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    with zipfile.ZipFile(out) as zf:
        assert len(zf.namelist()) == 6 and tf.io.decode_jpeg(zf.read("6.jpg")).shape == (256, 256, 3)
    ckpt = tf.train.latest_checkpoint(os.path.join(trained_run, "checkpoints"))
    out_b = str(tmp_path / "b.zip")
    assert cli.main(["generate", "--checkpoint", ckpt, "--out", out_b, "--allow-any-count",
                     "--no-progress", "--photos", os.path.join(sample_root, "photo_jpg")]) == 0
    out_c = str(tmp_path / "c.zip")
    assert cli.main(["generate", "--checkpoint", os.path.join(trained_run, "generator.keras"),
                     "--photos", sample_root, "--out", out_c, "--allow-any-count", "--no-progress"]) == 0
    with zipfile.ZipFile(out) as a, zipfile.ZipFile(out_c) as c:
        assert a.read("1.jpg") == c.read("1.jpg")  # same weights, same photos, same bytes


def test_generate_from_a_run_paints_with_its_best_generator_when_it_has_one(trained_run, sample_root, tmp_path,
                                                                             capsys):
    import json
    import shutil

    run_dir = str(tmp_path / "copy")
    shutil.copytree(trained_run, run_dir)
    args = ["--allow-any-count", "--no-progress"]
    assert cli.main(["generate", "--run", run_dir, "--out", str(tmp_path / "ckpt.zip"), *args]) == 0
    ckpt = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    assert capsys.readouterr().out.splitlines()[0] == f"generating from {ckpt} (the newest readable checkpoint)"
    # What [eval] leaves at a new best: generator_best.keras (here other weights than the
    # checkpoint's) and eval/best.json naming its epoch.
    best = keras.models.load_model(os.path.join(run_dir, "generator.keras"), compile=False)
    best.set_weights([w * 0.5 for w in best.get_weights()])
    best.save(os.path.join(run_dir, "generator_best.keras"))
    os.makedirs(os.path.join(run_dir, "eval"))
    with open(os.path.join(run_dir, "eval", "best.json"), "w") as fh:
        json.dump({"epoch": 1, "fid": 9.0, "distance": 0.5, "mifid": 9.0}, fh)
    assert cli.main(["generate", "--run", run_dir, "--out", str(tmp_path / "best.zip"), *args]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"generating from {os.path.join(run_dir, 'generator_best.keras')} (the best generator by MiFID, epoch 1)")
    assert cli.main(["generate", "--checkpoint", os.path.join(run_dir, "generator_best.keras"), "--photos",
                     sample_root, "--out", str(tmp_path / "keras.zip"), *args]) == 0
    with zipfile.ZipFile(tmp_path / "best.zip") as b, zipfile.ZipFile(tmp_path / "keras.zip") as k, \
            zipfile.ZipFile(tmp_path / "ckpt.zip") as c:
        assert b.read("1.jpg") == k.read("1.jpg")  # the best generator's weights
        assert b.read("1.jpg") != c.read("1.jpg")  # not the checkpoint's


@pytest.mark.parametrize("make_bad, message", [
    (lambda d, t: ["--checkpoint", str(t / "nope" / "ckpt-1")], "no such checkpoint"),
    (lambda d, t: ["--run", str(t)], "not a run directory (no config.toml)"),
    (lambda d, t: ["--checkpoint", str(t / "broken.keras")], "not a loadable Keras model"),
    (lambda d, t: ["--run", d, "--photos", str(t / "empty")], "photos:"),
])
def test_generate_bad_input_is_one_line(trained_run, tmp_path, capsys, make_bad, message):
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    (tmp_path / "empty").mkdir()
    code = cli.main(["generate", *make_bad(trained_run, tmp_path), "--out", str(tmp_path / "x.zip"),
                     "--allow-any-count", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and err[-1].startswith("gan-tpu: error:")
    assert not (tmp_path / "x.zip").exists()


def test_checkpoint_from_another_model_is_refused(trained_run, tmp_path, capsys):
    other = str(tmp_path / "other")
    os.makedirs(other)
    cfg = config.load(os.path.join(trained_run, "config.toml"), ["model.ngf=8", f'output.dir="{other}"'])
    config.save(cfg, os.path.join(other, "config.toml"))
    ckpt = tf.train.latest_checkpoint(os.path.join(trained_run, "checkpoints"))
    os.makedirs(os.path.join(other, "checkpoints"))
    for suffix in (".index", ".data-00000-of-00001"):
        with open(ckpt + suffix, "rb") as src, open(os.path.join(other, "checkpoints", "ckpt-2" + suffix), "wb") as dst:
            dst.write(src.read())
    code = cli.main(["generate", "--checkpoint", os.path.join(other, "checkpoints", "ckpt-2"),
                     "--out", str(tmp_path / "x.zip"), "--allow-any-count", "--no-progress"])
    assert code == 2 and "checkpoint does not fit model 'cyclegan'" in capsys.readouterr().err


def _run_with_damaged_checkpoints(trained_run, tmp_path, damage_all=False):
    """A copy of `trained_run` whose state file names a newer checkpoint, ckpt-99, with a
    truncated data file (a half-synced copy); `damage_all` truncates the good one too."""
    import shutil

    run_dir = str(tmp_path / "copy")
    shutil.copytree(trained_run, run_dir)
    folder = os.path.join(run_dir, "checkpoints")
    good = tf.train.latest_checkpoint(folder)
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copyfile(good + suffix, os.path.join(folder, "ckpt-99" + suffix))
    with open(os.path.join(folder, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "ckpt-99"\nall_model_checkpoint_paths: "{os.path.basename(good)}"\n'
                f'all_model_checkpoint_paths: "ckpt-99"\n')
    for prefix in ([good] if damage_all else []) + [os.path.join(folder, "ckpt-99")]:
        data_file = prefix + ".data-00000-of-00001"
        with open(data_file, "r+b") as f:
            f.truncate(os.path.getsize(data_file) // 2)
    return run_dir, good


def test_generate_and_resume_skip_a_truncated_newest_checkpoint(trained_run, tmp_path, caplog):
    run_dir, good = _run_with_damaged_checkpoints(trained_run, tmp_path)
    out = str(tmp_path / "a.zip")
    with caplog.at_level("WARNING", logger="gan_tpu"):
        assert cli.main(["generate", "--run", run_dir, "--out", out, "--allow-any-count", "--no-progress"]) == 0
    skipped = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(skipped) == 1 and "ckpt-99: unreadable checkpoint" in skipped[0]
    with zipfile.ZipFile(out) as zf:
        assert len(zf.namelist()) == 6
    caplog.clear()
    with caplog.at_level("INFO", logger="gan_tpu"):
        assert cli.main(["train", os.path.join(run_dir, "config.toml"), "--out", run_dir, "--resume"]) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert f"resumed from {good.replace(trained_run, run_dir)}" in messages
    assert sum("ckpt-99: unreadable checkpoint" in m for m in messages) == 1


def test_generate_with_no_readable_checkpoint_is_one_line_naming_the_folder(trained_run, tmp_path, capsys):
    run_dir, _ = _run_with_damaged_checkpoints(trained_run, tmp_path, damage_all=True)
    out = tmp_path / "a.zip"
    assert cli.main(["generate", "--run", run_dir, "--out", str(out), "--allow-any-count", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"gan-tpu: error: {os.path.join(run_dir, 'checkpoints')}: no readable checkpoint "
                   f"(all 2 have missing, truncated or corrupt files)")
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]


def test_generate_refuses_a_disk_without_room_for_the_zip_in_one_line(trained_run, tmp_path, capsys, monkeypatch):
    import shutil

    from gan_tpu.submission import zipwriter

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(zipwriter.shutil, "disk_usage", lambda path: usage._replace(free=50_000))
    code = cli.main(["generate", "--run", trained_run, "--out", str(tmp_path / "a.zip"), "--allow-any-count",
                     "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"gan-tpu: error: {tmp_path}: not enough free space for a.zip: about 0.20 MB needed "
        f"(6 images at JPEG quality 95), 0.05 MB free")
    assert os.listdir(tmp_path) == []


def _poisoned_train(monkeypatch, step):
    real_train = train.train

    def poisoned(cfg, **kwargs):
        return real_train(cfg, callbacks=[_PoisonAfter(step)], **kwargs)

    monkeypatch.setattr(train, "train", poisoned)


def test_a_run_that_diverges_submits_from_the_last_good_checkpoint_and_exits_1(sample_root, tmp_path,
                                                                               monkeypatch, capsys):
    from gan_tpu.submission.validate import validate_zip

    _poisoned_train(monkeypatch, 3)  # NaN weights after step 3: step 4's losses are NaN
    out = tmp_path / "run"
    assert cli.main(["run", "demo", "--out", str(out),
                     *_set([f'data.monet="{sample_root}"', f'data.photo="{sample_root}"', *TINY,
                            "train.epochs=2", "train.steps_per_epoch=2", "train.checkpoint_every=1"])]) == 1
    err = capsys.readouterr().err
    assert "training diverged" in err and "the submission comes from the last good checkpoint (step 3)" in err
    report = validate_zip(out / "images.zip", min_count=6, max_count=6)  # every photo, from finite weights
    assert report.ok, report
    generator = keras.models.load_model(out / "generator.keras", compile=False)
    assert all(np.isfinite(w).all() for w in generator.get_weights())


def test_a_run_that_diverges_before_its_first_checkpoint_is_a_one_line_error(sample_root, tmp_path, monkeypatch,
                                                                              capsys):
    _poisoned_train(monkeypatch, 1)
    out = tmp_path / "run"
    code = cli.main(["run", "demo", "--out", str(out),
                     *_set([f'data.monet="{sample_root}"', f'data.photo="{sample_root}"', *TINY,
                            "train.epochs=1", "train.steps_per_epoch=3", "train.checkpoint_every=1000"])])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert "before any checkpoint: nothing to keep" in err and len(err.strip().splitlines()) <= 2, err
    assert not (out / "images.zip").exists() and not (out / "generator.keras").exists()


def test_run_in_a_kaggle_notebook_keeps_checkpoints_out_of_the_output(sample_root, tmp_path, monkeypatch, capsys):
    # `!gan-tpu run cyclegan` as the README shows it: no --out, no --zip. Everything under
    # /kaggle/working is saved as the notebook's output, so the run folder goes to scratch
    # space, the zip to /kaggle/working/images.zip, and only what a person looks at is copied.
    kaggle, scratch = tmp_path / "kaggle", tmp_path / "scratch"
    (kaggle / "working").mkdir(parents=True)
    monkeypatch.setenv("GAN_TPU_KAGGLE_ROOT", str(kaggle))
    monkeypatch.setenv("GAN_TPU_SCRATCH", str(scratch))
    monkeypatch.delenv("GAN_TPU_WORKING", raising=False)
    pipeline = tmp_path / "painter.toml"  # the demo without its [output] dir, as the shipped recipes
    pipeline.write_text((config.PIPELINES_DIR / "demo.toml").read_text().replace('[output]\ndir = "demo_out/run"\n', ""))
    assert config.default_run_dir("painter") == str(scratch / "painter")
    assert cli.main(["run", str(pipeline), *_set([f'data.monet="{sample_root}"', f'data.photo="{sample_root}"', *TINY,
                                           "train.epochs=1", "train.steps_per_epoch=1"])]) == 0
    working = kaggle / "working"
    assert sorted(os.listdir(working)) == ["config.toml", "history.csv", "images.zip", "plots.png", "samples"]
    assert os.listdir(working / "samples") == ["epoch_001.png"]
    assert os.listdir(scratch / "painter" / "checkpoints") and (scratch / "painter" / "generator.keras").is_file()
    with zipfile.ZipFile(working / "images.zip") as zf:
        assert len(zf.namelist()) == 6
    assert f"submission: {working / 'images.zip'}" in capsys.readouterr().out
    monkeypatch.delenv("GAN_TPU_KAGGLE_ROOT")  # elsewhere: runs/<name>, as before
    monkeypatch.setenv("GAN_TPU_KAGGLE_ROOT", str(tmp_path / "not_kaggle"))
    assert config.default_run_dir("painter") == os.path.join("runs", "painter")


def test_generate_without_run_or_checkpoint_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse: usage, then one error line, status 2
        cli.main(["generate", "--out", str(tmp_path / "images.zip")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "gan-tpu generate: error: one of the arguments --run --checkpoint is required"
    assert "(--run DIR | --checkpoint PATH)" in err and "Traceback" not in err
    assert not (tmp_path / "images.zip").exists()


def test_resuming_with_another_backend_than_this_process_runs_is_refused(trained_run, sample_root):
    from gan_tpu.errors import UserError

    cfg = config.load(os.path.join(trained_run, "config.toml"), ['runtime.backend="jax"'])
    before = sorted(os.listdir(os.path.join(trained_run, "checkpoints")))
    with pytest.raises(UserError, match="runtime.backend: 'jax', but Keras runs on 'tensorflow'"):
        train.train(cfg, resume=True, verbose=0)
    assert sorted(os.listdir(os.path.join(trained_run, "checkpoints"))) == before


@pytest.mark.slow  # a whole `run` (train, export, 6 photos painted): 20-30 s of CPU
def test_a_whole_run_in_mixed_bfloat16_leaves_a_valid_zip_and_a_bfloat16_generator(sample_root, tmp_path, capsys):
    from gan_tpu.submission.validate import validate_zip

    out = tmp_path / "run"
    try:
        assert cli.main(["run", "demo", "--out", str(out),
                         *_set([f'data.monet="{sample_root}"', f'data.photo="{sample_root}"', *TINY,
                                "train.epochs=1", "train.steps_per_epoch=2",
                                'runtime.precision="mixed_bfloat16"'])]) == 0
        history = open(out / "history.csv").read().splitlines()
        assert len(history) == 2 and "nan" not in history[1].lower()
        report = validate_zip(out / "images.zip", min_count=6, max_count=6)
        assert report.ok, report
        generator = keras.models.load_model(out / "generator.keras", compile=False)
        assert any(getattr(l, "compute_dtype", None) == "bfloat16" for l in generator.layers)
        painted = generator(tf.zeros([1, 32, 32, 3]))
        assert painted.dtype == tf.float32 and np.isfinite(painted.numpy()).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")  # make_run set it for the process
