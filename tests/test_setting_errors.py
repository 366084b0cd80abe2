"""Errors that name the setting and the fix (issue 26's probes): a resume with other settings
than the run's config.toml, an image size the model cannot take, a missing --run folder, and
config errors that come before TensorFlow loads, printed as one line on a quiet stderr."""
import os
import subprocess
import sys

import pytest

from gan_tpu import cli, config, setting_errors
from gan_tpu.errors import UserError
from gan_tpu.sample_data import write_sample_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("sample"))
    write_sample_data(root, monet=2, photo=3, size=256, seed=1)
    return root


def _train(sample_root, out, *sets, resume=False):
    args = ["train", "demo", "--set", f'data.monet="{sample_root}"', "--set", f'data.photo="{sample_root}"',
            "--out", str(out), *[a for s in sets for a in ("--set", s)]]
    return cli.main(args + (["--resume"] if resume else []))


def test_resume_with_another_image_size_names_the_key_both_values_and_the_fix(sample_root, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    saved = config.load("demo", [f'data.monet="{sample_root}"', f'data.photo="{sample_root}"'])
    config.save(saved, out / "config.toml")
    assert _train(sample_root, out, "data.image_size=32", "model.ngf=8", resume=True) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"gan-tpu: error: --resume: {out}/config.toml differs: data.image_size is 64 there, 32 now, "
        f"model.ngf is 16 there, 8 now; to continue that run drop --set data.image_size=... "
        f"--set model.ngf=... (or use its pipeline), or train these settings into a new --out")
    assert sorted(os.listdir(out)) == ["config.toml"]


def test_resume_may_change_what_checkpoints_do_not_depend_on():
    saved = config.load("demo")
    now = config.load("demo", ["train.epochs=12", "budget.hours=1", "eval.every=2"])
    assert setting_errors.resume_conflicts(now, saved) == []
    setting_errors.check_resume(now, saved, "runs/demo")  # no error
    changed = config.load("demo", ["model.lr=1e-3"])
    assert setting_errors.resume_conflicts(changed, saved) == [("model.lr", 8e-4, 1e-3)]


def test_an_image_size_the_model_cannot_take_names_the_key_and_the_nearest_sizes(sample_root, tmp_path, capsys):
    out = tmp_path / "run48"
    assert _train(sample_root, out, "data.image_size=48") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("gan-tpu: error: data.image_size = 48: 'cyclegan' cannot take it: U-Net image size "
                       "must be a power of two >= 4, got 48; nearest sizes that work: 32 or 64")
    assert not out.exists()  # a failed start leaves no empty run folder


@pytest.mark.parametrize("message, size, nearest", [
    ("U-Net image size must be a power of two >= 4, got 48", 48, [32, 64]),
    ("ResNet generator image size must be a multiple of 4, got 50", 50, [48, 52]),
    ("DRIT++'s attribute encoder needs an image size divisible by 16, got 40", 40, [32, 48]),
    ("model.global_layers=7 needs image_size >= 96, got 32", 32, [96]),
    ("image size must be a power of two of at least 8, got 4", 4, [8]),
    ("something else entirely", 48, []),
])
def test_nearest_sizes(message, size, nearest):
    assert setting_errors.nearest_sizes(message, size) == nearest


def test_a_model_option_error_names_the_option():
    cfg = config.load("demo")
    err = setting_errors.model_value_error(cfg, ValueError("adversarial must be one of ('bce',), got 'x'"),
                                           ["adversarial"])
    assert str(err) == "model.adversarial: adversarial must be one of ('bce',), got 'x'"
    err = setting_errors.model_value_error(cfg, ValueError("model.d_layers=4 with d_scales=3 needs image_size >= 64, got 32"))
    assert str(err).startswith("data.image_size = 64: 'cyclegan' cannot take it:")
    assert str(err).endswith("(or change model.d_layers)")


def test_generate_run_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "no_such_dir"
    assert cli.main(["generate", "--run", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"gan-tpu: error: --run {missing}: no such folder (give a run directory, e.g. runs/cyclegan, "
        f"the --out of a train or run command)")
    with pytest.raises(UserError, match=r"not a run directory \(no config.toml\): a run's folder holds"):
        setting_errors.check_run_dir(str(tmp_path))


def _fresh(args, **env):
    clean = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env=dict(clean, PYTHONPATH=ROOT, **env), timeout=300)


def test_config_errors_come_before_tensorflow_loads():
    code = ("import sys; from gan_tpu import config; from gan_tpu.errors import UserError\n"
            "for bad in (['train.epochs=\"abc\"'], ['data.image_sz=3'], ['train.batch_size=0']):\n"
            "    try: config.load('demo', bad)\n"
            "    except UserError as err: print(str(err).split(':')[0])\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = _fresh(["-c", code])
    assert out.stdout.split() == ["train.epochs", "data.image_sz", "train.batch_size", "False", "False"], out.stderr


@pytest.mark.parametrize("args, line", [
    (["train", "demo", "--set", "train.epochs=0"], "gan-tpu: error: train.epochs: must be at least 1, got 0"),
    (["train", "demo", "--set", "model.ngf=true"], "gan-tpu: error: model.ngf: expected int, got bool True"),
    (["generate", "--run", "no_such_dir"], "gan-tpu: error: --run no_such_dir: no such folder"),
])
def test_an_error_is_exactly_one_line_on_stderr(args, line):
    """In a fresh process, as a user runs it: no TensorFlow or XLA log lines around it."""
    out = _fresh(["-m", "gan_tpu.cli", *args])
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith(line), out.stderr


@pytest.mark.parametrize("verbose", [False, True])
def test_native_log_lines_are_dropped_unless_verbose(verbose):
    code = ("import os, sys; from gan_tpu.quiet import filter_native_logs\n"
            "argv, f = filter_native_logs(sys.argv[1:])\n"
            "os.write(2, b'I0000 00:00:1796411484.899360    5367 cudart_stub.cc:31] Could not find cuda drivers\\n'\n"
            "            b'E0000 00:00:1796411486.101448    5367 cuda_platform.cc:52] failed call to cuInit\\n'\n"
            "            b'2024-05-01 10:00:00.123456: W tensorflow/core/x.cc:12] old style\\n'\n"
            "            b'a line from C++ that is not a log line\\n')\n"
            "print('gan-tpu: warning: act on this', file=sys.stderr)\n"
            "f and f.close()\n")
    out = _fresh(["-c", code, *(["--verbose"] if verbose else [])])
    kept = {"a line from C++ that is not a log line", "gan-tpu: warning: act on this"}
    lines = set(out.stderr.splitlines())
    assert lines == kept if not verbose else (kept < lines and len(lines) == 5), out.stderr
