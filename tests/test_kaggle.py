"""gan_tpu.kaggle: data paths, the TPU backend choice, `gan-tpu data` and `gan-tpu kernel`.

The kaggle package is the real one; only its network calls are stubbed (and record what
they receive). No credentials are needed: each test gets a clean HOME and config dir.
"""
import importlib.util
import json
import os
import subprocess
import sys
import zipfile

import pytest

from gan_tpu import config
from gan_tpu import kaggle as gk
from gan_tpu.cli import main
from gan_tpu.errors import UserError
from gan_tpu.sample_data import write_sample_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_kaggle = pytest.mark.skipif(importlib.util.find_spec("kaggle") is None,
                                  reason="the kaggle package is not installed (pip install 'gan_tpu[kaggle]')")

# Kaggle's TPU image today: tensorflow-cpu beside jax[tpu] (see DESIGN.md).
KAGGLE_TPU_IMAGE = {"tensorflow-cpu": "2.20.0", "keras": "3.10.0", "jax": "0.6.2", "jaxlib": "0.6.2",
                    "libtpu": "0.0.17"}


# --------------------------------------------------------------------------- paths


def test_tpu_kind_from_environment():
    none = lambda path: False  # noqa: E731 - no device files
    assert gk.tpu_kind({}, none) is None
    assert gk.tpu_kind({"TPU_NAME": "grpc://10.0.0.2:8470"}, none) == "node"
    assert gk.tpu_kind({"COLAB_TPU_ADDR": "10.0.0.2:8470"}, none) == "node"
    assert gk.tpu_kind({"TPU_NAME": "local"}, none) == "vm"
    assert gk.tpu_kind({}, lambda path: path == "/dev/vfio/0") == "vm"
    assert gk.tpu_kind({}, lambda path: path == "/dev/accel0") == "vm"
    assert gk.tpu_kind({"ISTPUVM": "1"}, none) == "vm"  # Kaggle's marker on its TPU VMs
    assert gk.tpu_kind({"ISTPUVM": "0"}, none) is None


def test_data_root_kaggle_local_and_gcs(tmp_path):
    gcs = lambda: "gs://kds-0123/gan-getting-started"  # noqa: E731
    root = str(tmp_path / "input")
    assert gk.data_root({}, root, gcs) == "data/gan-getting-started"
    data = tmp_path / "input" / "competitions" / "gan-getting-started"
    for sub in ("monet_tfrec", "photo_tfrec"):
        (data / sub).mkdir(parents=True)
    assert gk.data_root({}, root, gcs) == str(data)
    assert gk.data_root({"TPU_NAME": "local"}, root, gcs) == str(data)
    # An older TPU node's host cannot read this VM's disk: the GCS copy.
    assert gk.data_root({"TPU_NAME": "grpc://10.0.0.2:8470"}, root, gcs) == "gs://kds-0123/gan-getting-started"
    # $GAN_TPU_KAGGLE_ROOT stands in for /kaggle.
    assert gk.data_root({"GAN_TPU_KAGGLE_ROOT": str(tmp_path)}, gcs_path=gcs) == str(data)


def test_gcs_path_without_kaggle_datasets_is_a_user_error():
    gk.kaggle_gcs_path.cache_clear()
    with pytest.raises(UserError, match="kaggle_datasets"):
        gk.kaggle_gcs_path()


def test_pipelines_default_to_the_local_data_folder_off_kaggle():
    cfg = config.load("demo", ['data.monet="x"'])
    assert cfg["data"]["photo"] == "demo_out/data"
    assert config.validate({})["data"]["monet"] == gk.data_root()
    assert (config.PIPELINES_DIR / "demo.toml").is_file()


def test_score_extractor_prefers_kaggles_graph(tmp_path):
    assert gk.score_extractor(str(tmp_path)) == "tiny"
    weights = tmp_path / "keras-inception" / "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
    weights.parent.mkdir()
    weights.write_bytes(b"h5")
    assert gk.score_extractor(str(tmp_path)) == f"inception_v3:{weights}"
    graph = tmp_path / "inception" / "sub" / "classify_image_graph_def.pb"
    graph.parent.mkdir(parents=True)
    graph.write_bytes(b"pb")
    assert gk.score_extractor(str(tmp_path)) == f"kaggle:{graph}"


# --------------------------------------------------------------------------- TPU backend


def facts(dists, jax_backend=False, jax_platform=None, tpu="vm", jax_error=None):
    return gk.TpuFacts(tpu=tpu, distributions=dict(dists), jax_backend=jax_backend,
                       jax_platform=jax_platform, jax_error=jax_error)


def test_kaggle_tpu_image_without_jax_stops_with_the_fix():
    plan = gk.choose_tpu_backend(facts(KAGGLE_TPU_IMAGE))
    assert not plan.ok
    assert plan.fix == gk.TPU_FIX and "restart the session" in plan.fix
    assert "tensorflow-cpu 2.20.0 has no TPU support" in plan.reason
    assert "JAX is not installed" in plan.reason


def test_jax_path_is_preferred_when_it_exists_and_sees_the_tpu():
    plan = gk.choose_tpu_backend(facts(KAGGLE_TPU_IMAGE, jax_backend=True, jax_platform="tpu"))
    assert plan.ok and plan.backend == "jax" and "jax 0.6.2" in plan.reason
    # Even beside a TPU-capable TensorFlow, JAX goes first.
    both = dict(KAGGLE_TPU_IMAGE, **{"tensorflow-tpu": "2.19.1"})
    del both["tensorflow-cpu"]
    assert gk.choose_tpu_backend(facts(both, jax_backend=True, jax_platform="tpu")).backend == "jax"


def test_broken_jax_path_falls_back_to_tpu_strategy_or_stops():
    tf_tpu = {"tensorflow": "2.19.1", "libtpu": "0.0.10", "jax": "0.6.2"}
    plan = gk.choose_tpu_backend(facts(tf_tpu, jax_backend=True, jax_error="libtpu is in use"))
    assert plan.backend == "tensorflow" and "libtpu is in use" in plan.reason
    plan = gk.choose_tpu_backend(facts(KAGGLE_TPU_IMAGE, jax_backend=True, jax_platform="cpu"))
    assert not plan.ok and "JAX runs on cpu" in plan.reason and plan.fix == gk.TPU_FIX


@pytest.mark.parametrize("dists, capable", [
    ({"tensorflow-tpu": "2.19.1", "libtpu": "0.0.10"}, True),
    ({"tensorflow": "2.19.1", "libtpu": "0.0.10"}, True),
    ({"tensorflow": "2.18.0", "libtpu-nightly": "0.1"}, True),
    ({"tensorflow": "2.19.1"}, False),             # no libtpu
    ({"tensorflow": "2.21.0", "libtpu": "0.0.17"}, False),
    ({"tensorflow-cpu": "2.19.0"}, False),
    ({}, False),
])
def test_tensorflow_tpu_capable(dists, capable):
    assert gk.tensorflow_tpu_capable(dists)[0] is capable
    plan = gk.choose_tpu_backend(facts(dists))
    assert plan.ok is capable and (plan.backend == "tensorflow" if capable else plan.fix == gk.TPU_FIX)


def test_prepare_accelerator_stops_before_training_on_the_kaggle_image():
    with pytest.raises(UserError) as err:
        gk.prepare_accelerator("tpu", facts=facts(KAGGLE_TPU_IMAGE), env={}, log=lambda m: None)
    assert gk.TPU_FIX in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="no TPU is attached"):
        gk.prepare_accelerator("tpu", facts=facts(KAGGLE_TPU_IMAGE, tpu=None), env={}, log=lambda m: None)


def test_prepare_accelerator_sets_the_jax_backend_before_keras():
    import keras  # noqa: F401 - imported on TensorFlow, as in this test session

    jax_facts = facts(KAGGLE_TPU_IMAGE, jax_backend=True, jax_platform="tpu")
    with pytest.raises(UserError, match="already imported on 'tensorflow', not 'jax': restart the session"):
        gk.prepare_accelerator("tpu", facts=jax_facts, env={}, log=lambda m: None)
    # A fresh process, as a notebook's first cells are: no Keras yet, so the backend is set.
    code = ("import json, sys; from gan_tpu import kaggle as gk; env = {}; "
            "f = gk.TpuFacts('vm', {'jax': '0.6.2'}, True, 'tpu'); "
            "plan = gk.prepare_accelerator('tpu', facts=f, env=env, log=lambda m: None); "
            "smoke = gk.prepare_accelerator('tpu', smoke=True, facts=gk.TpuFacts(None, {}, True), "
            "env={'KERAS_BACKEND': 'jax'}, log=lambda m: None); "
            "print(json.dumps([plan.backend, env, 'keras' in sys.modules, smoke.backend]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    # The smoke run rehearses the JAX path on CPU when KERAS_BACKEND=jax asks for it.
    assert json.loads(out.stdout) == ["jax", {"KERAS_BACKEND": "jax"}, False, "jax"], out.stderr[-2000:]
    env = {}
    tf_facts = facts({"tensorflow-tpu": "2.19.1"})
    assert gk.prepare_accelerator("tpu", facts=tf_facts, env=env, log=lambda m: None).backend == "tensorflow"
    assert env == {"KERAS_BACKEND": "tensorflow"}


def test_prepare_accelerator_smoke_mode_and_missing_gpu():
    lines = []
    plan = gk.prepare_accelerator("tpu", smoke=True, facts=facts(KAGGLE_TPU_IMAGE, tpu=None), env={},
                                  log=lines.append)
    assert plan.backend == "tensorflow" and "smoke mode" in lines[0]
    with pytest.raises(UserError, match="no GPU is visible"):
        gk.prepare_accelerator("gpu", env={}, log=lambda m: None)
    assert "smoke mode" in gk.prepare_accelerator("gpu", smoke=True, env={}, log=lambda m: None).reason
    with pytest.raises(UserError, match="accelerator 'ipu'"):
        gk.prepare_accelerator("ipu")


def test_tpu_facts_on_this_machine():
    found = gk.tpu_facts()
    assert found.tpu is None  # CI has no TPU
    assert found.distributions.get("tensorflow") or found.distributions.get("tensorflow-cpu")
    assert found.jax_backend is True  # the test extra installs JAX


# --------------------------------------------------------------------------- credentials


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A clean home and Kaggle config dir; no credentials anywhere yet."""
    home = tmp_path / "home"
    home.mkdir()
    cfg = tmp_path / "kaggle_cfg"
    cfg.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(cfg))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "XDG_CONFIG_HOME",
                "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE"):
        monkeypatch.delenv(var, raising=False)
    return cfg


@pytest.fixture
def api(env, monkeypatch):
    """An authenticated KaggleApi (fake key) whose network calls are stubbed per test."""
    monkeypatch.setenv("KAGGLE_USERNAME", "monet-fan")
    monkeypatch.setenv("KAGGLE_KEY", "0123456789abcdef0123456789abcdef")
    from gan_tpu.kaggle.api import load_api

    return load_api()


# --------------------------------------------------------------------------- gan-tpu data


def _competition_zip(path, monet=3, photo=5, drop=None):
    """A zip in the layout Kaggle serves, from sample data (`drop`: leave that folder's first file out)."""
    src = path.parent / "src"
    write_sample_data(str(src), monet=monet, photo=photo, size=32, seed=1)
    with zipfile.ZipFile(path, "w") as zf:
        for root, _, files in os.walk(src):
            for name in sorted(files):
                full = os.path.join(root, name)
                rel = os.path.relpath(full, src)
                if drop and os.path.dirname(rel) == drop:
                    drop = None
                    continue
                zf.write(full, rel)
    return path


@needs_kaggle
def test_data_download_unpacks_checks_and_renames(api, tmp_path, monkeypatch):
    calls = []

    def download(self, competition, path=None, force=False, quiet=True, unzip=False):
        calls.append(dict(competition=competition, path=path, unzip=unzip))
        _competition_zip(tmp_path / "served.zip")
        os.replace(tmp_path / "served.zip", os.path.join(path, f"{competition}.zip"))

    monkeypatch.setattr(type(api), "competition_download_files", download)
    dest = tmp_path / "data" / "gan-getting-started"
    lines = []
    counts = gk.download_data(str(dest), api=api, expect={"monet": 3, "photo": 5}, log=lines.append)
    assert counts == {"monet": 3, "photo": 5}
    assert calls == [dict(competition="gan-getting-started", path=str(tmp_path / "data" / ".gan-getting-started.download"),
                          unzip=False)]
    assert sorted(os.listdir(dest)) == ["monet_jpg", "monet_tfrec", "photo_jpg", "photo_tfrec"]
    assert sorted(os.listdir(dest.parent)) == ["gan-getting-started"]  # no partial or download left
    # Complete already: no second download.
    assert gk.download_data(str(dest), api=api, expect={"monet": 3, "photo": 5}, log=lines.append) == counts
    assert len(calls) == 1 and "already complete" in lines[-1]
    # --force downloads again and swaps the new copy in; nothing else is left behind.
    (dest / "monet_jpg" / "stray.txt").write_text("old copy")
    assert gk.download_data(str(dest), api=api, force=True, expect={"monet": 3, "photo": 5},
                            log=lines.append) == counts
    assert len(calls) == 2 and not (dest / "monet_jpg" / "stray.txt").exists()
    assert sorted(os.listdir(dest.parent)) == ["gan-getting-started"]
    # The real competition's counts are checked by default.
    with pytest.raises(UserError, match="not a complete copy.*3 monet images, expected 300"):
        gk.download_data(str(dest), api=api)


@needs_kaggle
@pytest.mark.parametrize("damage", ["truncated", "missing_jpg"])
def test_partial_download_never_looks_complete(api, tmp_path, monkeypatch, damage):
    def download(self, competition, path=None, force=False, quiet=True, unzip=False):
        target = os.path.join(path, f"{competition}.zip")
        if damage == "truncated":
            _competition_zip(tmp_path / "served.zip")
            data = (tmp_path / "served.zip").read_bytes()
            with open(target, "wb") as fh:
                fh.write(data[: len(data) // 2])
        else:
            _competition_zip(tmp_path / "served.zip", drop="photo_jpg")
            os.replace(tmp_path / "served.zip", target)

    monkeypatch.setattr(type(api), "competition_download_files", download)
    dest = tmp_path / "data" / "gan-getting-started"
    expected = "incomplete or corrupt download" if damage == "truncated" else "photo_jpg holds 4 images but the records name 5"
    with pytest.raises(UserError, match=expected):
        gk.download_data(str(dest), api=api, expect={"monet": 3, "photo": 5}, log=lambda m: None)
    assert not dest.exists()
    assert not (dest.parent / ".gan-getting-started.partial").exists()


@needs_kaggle
def test_download_errors_are_one_line(api, tmp_path, monkeypatch):
    def forbidden(self, competition, path=None, force=False, quiet=True, unzip=False):
        raise RuntimeError("403 Client Error: Forbidden for url")

    monkeypatch.setattr(type(api), "competition_download_files", forbidden)
    with pytest.raises(UserError, match="403.*accept the competition's rules"):
        gk.download_data(str(tmp_path / "d"), api=api, log=lambda m: None)


def test_data_without_credentials_is_a_one_line_error(env, tmp_path, capsys):
    assert main(["data", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-tpu: error: ") and "\n" not in err
    assert ("no Kaggle credentials" in err) or ("kaggle package is not installed" in err)
    assert not (tmp_path / "d").exists()


# --------------------------------------------------------------------------- gan-tpu kernel


def test_kernel_without_credentials_is_a_one_line_error(env, tmp_path, capsys):
    wheel_dir = tmp_path / "dist"
    wheel_dir.mkdir()
    (wheel_dir / f"gan_tpu-{gk_version()}-py3-none-any.whl").write_bytes(b"PK")
    assert main(["kernel", "tpu-cyclegan", "--wheel-dir", str(wheel_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-tpu: error: ") and "\n" not in err
    assert ("no Kaggle credentials" in err) or ("kaggle package is not installed" in err)
    assert main(["kernel", "tpu-cyclegan", "--wheel-dir", str(tmp_path)]) == 2
    assert "make wheel" in capsys.readouterr().err
    assert main(["kernel", "no-such-kernel"]) == 2
    assert "known: gan-tpu-generate, gpu-cyclegan, tpu-cyclegan" in capsys.readouterr().err


def gk_version():
    from gan_tpu import __version__

    return __version__
