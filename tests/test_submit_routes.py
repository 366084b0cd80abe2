"""The notebook-only submission route: `gan-tpu submit --kernel`, `make kernel SUBMIT=1`
(push_and_collect) and `make submit RUN=...` (submit_run), and the plain zip's refusal.

The kaggle client is stubbed only at its import boundary: a fake `kaggle.api.kaggle_api_extended`
module whose KaggleApi records each call after binding it to the REAL KaggleApi method's
signature (kaggle 2.2.5), so a wrong argument fails here as it would against Kaggle. Files are
real: the pushed folder's metadata JSON and notebook, the downloaded zip, the run's checkpoint.
"""
from __future__ import annotations

import importlib.machinery
import inspect
import json
import os
import shutil
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gan_tpu import kaggle as gk
from gan_tpu.cli import main
from gan_tpu.errors import UserError
from gan_tpu.kaggle import from_run
from gan_tpu.kaggle.roundtrip import push_and_collect
from tests.helpers import valid_submission_zip

REAL = pytest.importorskip("kaggle.api.kaggle_api_extended").KaggleApi
OWNER = "monet-fan"


class FakeKaggleApi:
    """Kaggle's server as these tests script it; every call checked against the real signature."""

    CONFIG_NAME_USER = "username"
    script: dict = {}

    def __init__(self):
        self.calls = FakeKaggleApi.script.setdefault("calls", [])
        self.config_values = {"username": OWNER}

    def _record(self, name, *args, **kwargs):
        bound = inspect.signature(getattr(REAL, name)).bind(self, *args, **kwargs)
        bound.apply_defaults()
        self.calls.append((name, dict(list(bound.arguments.items())[1:])))

    def authenticate(self):
        self._record("authenticate")

    def get_config_value(self, name):
        return self.config_values.get(name)

    def dataset_status(self, dataset, format=None):
        self._record("dataset_status", dataset, format)
        if dataset not in self.script.setdefault("datasets", {OWNER + "/gan-tpu-wheel"}):
            self.script["datasets"].add(dataset)
            raise RuntimeError("404 Client Error: Not Found")
        return "ready"

    def _upload(self, name, folder, *args, **kwargs):
        self._record(name, folder, *args, **kwargs)
        files = {p.name: p.read_bytes() for p in Path(folder).iterdir()}
        self.calls[-1][1]["files"] = files
        return types.SimpleNamespace(error=None, url="u")

    def dataset_create_version(self, folder, *args, **kwargs):
        return self._upload("dataset_create_version", folder, *args, **kwargs)

    def dataset_create_new(self, folder, *args, **kwargs):
        return self._upload("dataset_create_new", folder, *args, **kwargs)

    def kernels_push(self, folder, *args, **kwargs):
        self._record("kernels_push", folder, *args, **kwargs)
        meta = json.loads(Path(folder, "kernel-metadata.json").read_text())
        notebook = json.loads(Path(folder, meta["code_file"]).read_text())
        self.calls[-1][1].update(meta=meta, notebook=notebook, files=sorted(os.listdir(folder)))
        return types.SimpleNamespace(error=None, url=f"https://www.kaggle.com/code/{meta['id']}", version_number=4)

    def kernels_list(self, *args, **kwargs):
        self._record("kernels_list", *args, **kwargs)
        return [types.SimpleNamespace(ref=ref, current_version_number=n) for ref, n in self.script.get("listed", [])]

    def kernels_status(self, kernel):
        self._record("kernels_status", kernel)
        statuses = self.script.setdefault("statuses", [])
        name, failure = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        status = getattr(__import__("kagglesdk.kernels.types.kernels_enums", fromlist=["x"]).KernelWorkerStatus, name)
        return types.SimpleNamespace(status=status, failure_message=failure)

    def kernels_logs(self, kernel):
        self._record("kernels_logs", kernel)
        return json.dumps([{"stream_name": "stdout", "time": i, "data": f"line {i}\n"} for i in range(40)]
                          + [{"stream_name": "stderr", "time": 41, "data": "SystemExit: gan-tpu run failed\n"}])

    def kernels_output(self, kernel, path, *args, **kwargs):
        self._record("kernels_output", kernel, path, *args, **kwargs)
        target = Path(path) / "images.zip"
        shutil.copy(self.script["zip"], target)
        return [str(target), str(Path(path) / "notebook.log")], None

    def competition_submit_code(self, *args, **kwargs):
        self._record("competition_submit_code", *args, **kwargs)
        return types.SimpleNamespace(message="Successfully submitted", ref=98765)

    def competition_submit(self, *args, **kwargs):
        self._record("competition_submit", *args, **kwargs)
        raise AssertionError("the file route must not be taken for a notebook competition")


@pytest.fixture(scope="module")
def good_zip(tmp_path_factory, zip_validated_once):  # its copies validated once per file (conftest)
    return valid_submission_zip(tmp_path_factory.mktemp("good") / "images.zip")


@pytest.fixture
def kaggle(tmp_path, monkeypatch, good_zip):
    """The fake client installed where gan_tpu imports it; credentials from the environment."""
    package = types.ModuleType("kaggle")
    package.__spec__ = importlib.machinery.ModuleSpec("kaggle", None, is_package=True)
    api_pkg = types.ModuleType("kaggle.api")
    extended = types.ModuleType("kaggle.api.kaggle_api_extended")
    extended.KaggleApi = FakeKaggleApi
    for name, module in (("kaggle", package), ("kaggle.api", api_pkg), ("kaggle.api.kaggle_api_extended", extended)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("KAGGLE_USERNAME", OWNER)
    monkeypatch.setenv("KAGGLE_KEY", "0123456789abcdef0123456789abcdef")
    FakeKaggleApi.script = {"calls": [], "zip": good_zip, "statuses": [("COMPLETE", "")]}
    return FakeKaggleApi.script


def names(script) -> list[str]:
    return [name for name, _ in script["calls"] if name != "authenticate"]


def call(script, name, index=-1) -> dict:
    return [args for n, args in script["calls"] if n == name][index]


def bad_zip(tmp_path) -> str:
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("1.jpg", b"not a jpeg at all" * 40)
    return str(path)


# --------------------------------------------------------------------------- gan-tpu submit


def test_a_plain_zip_to_this_competition_is_refused_with_the_notebook_command(kaggle, good_zip, capfd):
    assert main(["submit", good_zip, "-m", "v1"]) == 2
    out, err = capfd.readouterr()
    assert err.count("\n") == 1 and err.startswith("gan-tpu: error: gan-getting-started takes notebook submissions")
    assert "gan-tpu submit --kernel OWNER/SLUG --version N -m MESSAGE" in err and "Traceback" not in err
    assert names(kaggle) == []


def test_submit_kernel_version_downloads_validates_and_submits_that_version(kaggle, capfd):
    kernel = f"{OWNER}/gan-tpu-cyclegan-gpu"
    assert main(["submit", "--kernel", kernel, "--version", "3", "-m", "cyclegan v3"]) == 0
    assert names(kaggle) == ["kernels_status", "kernels_output", "competition_submit_code"]
    assert call(kaggle, "kernels_status")["kernel"] == f"{kernel}/3"
    output = call(kaggle, "kernels_output")
    assert output["kernel"] == f"{kernel}/3" and output["file_pattern"] == r"(^|/)images\.zip$"
    submitted = call(kaggle, "competition_submit_code")
    assert {k: submitted[k] for k in ("file_name", "message", "competition", "kernel", "kernel_version")} == dict(
        file_name="images.zip", message="cyclegan v3", competition="gan-getting-started", kernel=kernel,
        kernel_version=3)
    out = capfd.readouterr().out
    assert "VALID: " in out and f"submitted {kernel} version 3" in out and "submission ref: 98765" in out


def test_submit_kernel_without_version_takes_the_newest_or_says_to_pass_it(kaggle, capfd):
    kernel = f"{OWNER}/gan-tpu-cyclegan-tpu"
    kaggle["listed"] = [(f"{OWNER}/other-notebook", 9), (kernel, 7)]
    assert main(["submit", "--kernel", kernel, "-m", "newest"]) == 0
    assert call(kaggle, "kernels_list")["user"] == OWNER and call(kaggle, "kernels_list")["search"] == "gan-tpu-cyclegan-tpu"
    assert call(kaggle, "competition_submit_code")["kernel_version"] == 7
    kaggle["listed"] = []
    assert main(["submit", "--kernel", kernel, "-m", "newest"]) == 2
    assert "pass --version N" in capfd.readouterr().err
    assert main(["submit", "--kernel", "no-slash", "-m", "x"]) == 2
    assert "expected OWNER/SLUG" in capfd.readouterr().err


def test_an_invalid_or_unfinished_version_is_not_submitted(kaggle, tmp_path, capfd):
    kaggle["zip"] = bad_zip(tmp_path)
    assert main(["submit", "--kernel", f"{OWNER}/gan-tpu-cyclegan-gpu", "--version", "2", "-m", "x"]) == 2
    out, err = capfd.readouterr()
    assert "INVALID: " in out and "not submitting" in err
    kaggle["statuses"] = [("RUNNING", "")]
    assert main(["submit", "--kernel", f"{OWNER}/gan-tpu-cyclegan-gpu", "--version", "2", "-m", "x"]) == 2
    assert "is running; only a complete version can be submitted" in capfd.readouterr().err
    assert "competition_submit_code" not in names(kaggle)


# --------------------------------------------------------------------------- make kernel


def _wheel(tmp_path) -> str:
    from gan_tpu import __version__

    folder = tmp_path / "dist"
    folder.mkdir(exist_ok=True)
    (folder / f"gan_tpu-{__version__}-py3-none-any.whl").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    return str(folder)


class Clock:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += 100.0


def test_make_kernel_end_to_end_pushes_waits_downloads_validates_and_submits(kaggle, tmp_path):
    kaggle["statuses"] = [("QUEUED", ""), ("RUNNING", ""), ("COMPLETE", "")]
    clock, lines = Clock(), []
    pushed, path = push_and_collect("gpu-cyclegan", wheel_dir=_wheel(tmp_path), submit=True, message="gpu run",
                                    out_dir=tmp_path / "out", poll_s=0, sleep=clock.sleep, clock=clock,
                                    log=lines.append)
    assert names(kaggle) == ["dataset_status", "dataset_create_version", "dataset_status", "kernels_push",
                             "kernels_status", "kernels_status", "kernels_status", "kernels_output",
                             "competition_submit_code"]
    push = call(kaggle, "kernels_push")
    assert push["meta"]["id"] == f"{OWNER}/gan-tpu-cyclegan-gpu" and push["files"] == ["gpu-cyclegan.ipynb",
                                                                                      "kernel-metadata.json"]
    assert push["meta"]["dataset_sources"] == [f"{OWNER}/gan-tpu-wheel"] and push["meta"]["enable_internet"] == "false"
    assert "".join(push["notebook"]["cells"][-1]["source"]).startswith("## Submit\nThe competition takes notebook")
    assert [call(kaggle, "kernels_status", i)["kernel"] for i in range(3)] == [f"{OWNER}/gan-tpu-cyclegan-gpu/4"] * 3
    assert clock.sleeps == [0, 0]  # the poll interval the caller set, once per unfinished status
    assert sum("queued" in ln or "running" in ln for ln in lines) == 2
    assert (pushed.kernel, pushed.version) == (f"{OWNER}/gan-tpu-cyclegan-gpu", 4)
    assert path == tmp_path / "out" / "gan-tpu-cyclegan-gpu-v4" / "images.zip" and path.is_file()
    assert call(kaggle, "competition_submit_code")["kernel_version"] == 4


def test_make_kernel_without_submit_stops_after_validating(kaggle, tmp_path):
    lines = []
    push_and_collect("tpu-cyclegan", upload_wheel=False, out_dir=tmp_path, poll_s=0, sleep=lambda s: None,
                     log=lines.append)
    assert names(kaggle) == ["kernels_push", "kernels_status", "kernels_output"]
    assert any(ln.startswith("VALID: ") for ln in lines) and "gan-tpu submit --kernel" in lines[-1]


def test_a_failed_version_shows_its_log_tail_and_nothing_is_downloaded(kaggle, tmp_path):
    kaggle["statuses"] = [("RUNNING", ""), ("ERROR", "Your notebook hit an exception")]
    clock = Clock()
    with pytest.raises(UserError) as err:
        push_and_collect("gpu-cyclegan", upload_wheel=False, submit=True, message="m", out_dir=tmp_path, poll_s=0,
                         timeout_s=1000, sleep=clock.sleep, clock=clock, log=lambda m: None)
    text = str(err.value)
    assert text.startswith(f"{OWNER}/gan-tpu-cyclegan-gpu/4 ended with status error: Your notebook hit an exception")
    tail = text.splitlines()[1:]
    assert len(tail) == 15 and tail[-1].strip() == "SystemExit: gan-tpu run failed" and tail[0].strip() == "line 26"
    assert "kernels_output" not in names(kaggle) and "competition_submit_code" not in names(kaggle)


def test_waiting_gives_up_after_the_timeout(kaggle, tmp_path):
    kaggle["statuses"] = [("RUNNING", "")]
    clock = Clock()
    with pytest.raises(UserError, match=r"still running after 300 s.*gan-tpu submit --kernel .* --version 4"):
        push_and_collect("gpu-cyclegan", upload_wheel=False, out_dir=tmp_path, timeout_s=250, poll_s=0,
                         sleep=clock.sleep, clock=clock, log=lambda m: None)
    assert len(clock.sleeps) == 3


def test_a_bad_zip_from_the_notebook_is_not_submitted(kaggle, tmp_path):
    kaggle["zip"] = bad_zip(tmp_path)
    with pytest.raises(UserError, match="not submitting .*images.zip: it is not a valid submission"):
        push_and_collect("gpu-cyclegan", upload_wheel=False, submit=True, message="m", out_dir=tmp_path / "o",
                         poll_s=0, sleep=lambda s: None, log=lambda m: None)
    assert "competition_submit_code" not in names(kaggle)


# --------------------------------------------------------------------------- make submit RUN=...


def _run_dir(tmp_path, train_seconds=3600.0 * 2.5) -> Path:
    """A run folder as `gan-tpu train` leaves it: generator.keras and a checkpoint with its plan."""
    import tensorflow as tf

    from gan_tpu import checkpoints

    run = tmp_path / "runs" / "cyclegan"
    (run / "checkpoints").mkdir(parents=True)
    (run / "generator.keras").write_bytes(b"PK keras zip " * 10)
    prefix = str(run / "checkpoints" / "ckpt-3")
    checkpoints.write(prefix, {"plan": tf.constant([9000.0, 0.9, train_seconds, 17100.0], tf.float64),
                               "step": tf.constant(8123, tf.int64)})
    (run / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\n')
    return run


def test_make_submit_uploads_the_generator_and_budget_then_submits_the_generation_notebook(kaggle, tmp_path):
    run = _run_dir(tmp_path)
    lines = []
    pushed, path = from_run.submit_run(str(run), "from my GPU box", wheel_dir=_wheel(tmp_path), poll_s=0,
                                       sleep=lambda s: None, log=lines.append)
    assert names(kaggle) == ["dataset_status", "dataset_create_new", "dataset_status",  # the generator, new
                             "dataset_status", "dataset_create_version", "dataset_status",  # the wheel
                             "kernels_push", "kernels_status", "kernels_output", "competition_submit_code"]
    created = call(kaggle, "dataset_create_new")
    assert sorted(created["files"]) == ["budget.json", "dataset-metadata.json", "generator.keras"]
    assert created["public"] is False
    assert json.loads(created["files"]["dataset-metadata.json"])["id"] == f"{OWNER}/gan-tpu-generator"
    assert created["files"]["generator.keras"] == (run / "generator.keras").read_bytes()
    record = json.loads(created["files"]["budget.json"])
    assert record["train_seconds"] == 9000.0 and record["budget_seconds"] == 17100.0 and record["steps"] == 8123
    push = call(kaggle, "kernels_push")
    assert push["meta"]["dataset_sources"] == [f"{OWNER}/gan-tpu-wheel", f"{OWNER}/gan-tpu-generator"]
    assert push["meta"]["enable_internet"] == "false" and push["meta"]["enable_gpu"] == "true"
    assert call(kaggle, "competition_submit_code")["kernel"] == f"{OWNER}/gan-tpu-generate"
    assert path == run / "kaggle" / "gan-tpu-generate-v4" / "images.zip"
    assert "training took 2.50 h of the 4.75 h budget" in lines[0]


def test_make_submit_refuses_a_run_without_generator_or_training_record(kaggle, tmp_path, capfd):
    run = _run_dir(tmp_path, train_seconds=0.0)
    with pytest.raises(UserError, match="no training time"):
        from_run.submit_run(str(run), "m", wheel_dir=_wheel(tmp_path), log=lambda m: None)
    (run / "generator.keras").unlink()
    assert main(["submit", "--run", str(run), "-m", "m"]) == 2
    assert "no generator.keras or generator_best.keras" in capfd.readouterr().err
    assert names(kaggle) == []


def test_make_submit_tells_a_translator_from_a_noise_generator(tmp_path):
    import keras

    photo = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(3, 1)])
    noise = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8 * 8 * 3), keras.layers.Reshape((8, 8, 3))])
    photo.save(tmp_path / "photo.keras")
    noise.save(tmp_path / "noise.keras")
    assert from_run.input_rank(tmp_path / "photo.keras") == 4 and from_run.input_rank(tmp_path / "noise.keras") == 2
    assert from_run.input_rank(tmp_path / "photo.keras.missing") is None
    run = _run_dir(tmp_path)
    shutil.copy(tmp_path / "noise.keras", run / "generator.keras")
    with pytest.raises(UserError, match="a noise model's generator"):
        from_run.stage(run, tmp_path)


def test_the_generation_kernel_is_declared_for_kaggle():
    folder = gk.kernel_dir(from_run.GENERATE_KERNEL)
    meta = gk.read_metadata(folder)
    assert gk.check_metadata(meta, folder) == [] and gk.notebook_in_sync(folder)
    assert f"{gk.OWNER_PLACEHOLDER}/{from_run.GENERATOR_SLUG}" in meta["dataset_sources"]
    assert np.array_equal(sorted(os.listdir(folder)), ["gan-tpu-generate.ipynb", "gan-tpu-generate.py",
                                                      "kernel-metadata.json"])
