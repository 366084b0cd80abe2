"""gan_tpu.platform: the accelerator, the backend that drives it, the supported versions;
decided without importing Keras (proved in fresh interpreters), with floors that match
setup.cfg and the README's support matrix."""
import configparser
import json
import os
import re
import subprocess
import sys

import pytest

from gan_tpu import platform
from gan_tpu.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KAGGLE_TPU_IMAGE = {"tensorflow-cpu": "2.20.0", "keras": "3.15.1", "jax": "0.7.2", "jaxlib": "0.7.2",
                    "libtpu": "0.0.17", "numpy": "2.5.5", "scipy": "1.18.1"}


def fresh_python(code: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TPU_NAME", "TPU_ACCELERATOR_TYPE")}
    return subprocess.run([sys.executable, *code], capture_output=True, text=True, cwd=ROOT,
                          env=dict(clean, PYTHONPATH=ROOT, **env), timeout=300)


def test_one_tpu_detector_reads_every_sign_of_a_tpu():
    none = lambda path: False  # noqa: E731
    assert platform.tpu_kind({}, none) is None
    assert platform.tpu_kind({"TPU_ACCELERATOR_TYPE": "v5litepod-8"}, none) == "vm"  # Kaggle's TPU VM
    assert platform.tpu_kind({"TPU_NAME": "local"}, none) == "vm"
    assert platform.tpu_kind({"TPU_NAME": "grpc://10.0.0.2:8470"}, none) == "node"
    assert platform.tpu_kind({}, lambda path: path == "/dev/accel0") == "vm"


def test_auto_backend_is_the_tpu_plan_on_a_tpu_host_and_tensorflow_elsewhere():
    tpu = dict(tpu="vm", distributions=KAGGLE_TPU_IMAGE, jax_backend=True)
    assert platform.auto_backend(platform.TpuFacts(**tpu, jax_platform="tpu")) == "jax"
    assert platform.auto_backend(platform.TpuFacts(**dict(tpu, tpu=None), jax_platform="tpu")) == "tensorflow"
    tf_tpu = platform.TpuFacts("vm", {"tensorflow-tpu": "2.20.0", "jax": "0.7.2"}, True, jax_platform="cpu")
    assert platform.auto_backend(tf_tpu) == "tensorflow"
    assert platform.tensorflow_tpu_capable({"tensorflow": "2.21.0", "libtpu": "0.0.17"}) == (
        False, "tensorflow 2.21.0 has no TPU support (the newest TPU build is tensorflow-tpu 2.20.0)")


def test_gpus_are_counted_from_the_driver_without_tensorflow(tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: Tesla T4 (UUID: GPU-1)'\necho 'GPU 1: Tesla T4 (UUID: GPU-2)'\n")
    smi.chmod(0o755)
    assert platform.gpu_devices(which=lambda name: str(smi)) == ["GPU 0: Tesla T4", "GPU 1: Tesla T4"]


def test_too_old_versions_are_named_in_one_line_with_the_fix():
    old = dict(KAGGLE_TPU_IMAGE, keras="3.5.0", jaxlib="0.4.30")
    with pytest.raises(UserError) as err:
        platform.require_supported("jax", old)
    msg = str(err.value)
    assert "\n" not in msg
    assert "keras 3.5.0 (needs keras>=3.8), jaxlib 0.4.30 (needs jaxlib>=0.4.38)" in msg
    assert msg.endswith("fix: pip install -U 'keras>=3.8' 'jaxlib>=0.4.38', then restart")
    platform.require_supported("tensorflow", dict(KAGGLE_TPU_IMAGE, jaxlib="0.1"))  # no JAX on TensorFlow
    with pytest.raises(UserError, match=r"tensorflow-cpu 2.17.1 \(needs tensorflow-cpu>=2.18\)"):
        platform.require_supported("tensorflow", dict(KAGGLE_TPU_IMAGE, **{"tensorflow-cpu": "2.17.1"}))
    with pytest.raises(UserError, match=r"Python 3.9.7 .*fix: use Python 3.10 or newer"):
        platform.require_supported("tensorflow", KAGGLE_TPU_IMAGE, python=(3, 9, 7))
    assert platform.too_old("jax", KAGGLE_TPU_IMAGE, python=(3, 12, 1)) == []


def test_floors_match_setup_cfg_and_the_readme_support_matrix():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    declared = cfg["options"]["install_requires"] + cfg["options.extras_require"]["tf"] + \
        cfg["options.extras_require"]["jax"]
    found = dict(re.findall(r"^\s*([a-z]+)>=([\d.]+)\s*$", declared, flags=re.M))
    floors = {k: ".".join(map(str, v)) for k, v in platform.FLOORS.items()}
    assert cfg["options"]["python_requires"] == f">={floors.pop('python')}"
    assert found == floors
    assert "tensorflow" not in cfg["options"]["install_requires"]  # an extra: no second TensorFlow
    readme = open(os.path.join(ROOT, "README.md")).read()
    for name, label in (("python", "Python"), ("tensorflow", "TensorFlow"), ("keras", "Keras"),
                        ("jax", "JAX"), ("numpy", "numpy"), ("scipy", "scipy")):
        row = re.search(rf"^\| {label}\b[^|]*\|([^|]*)\|([^|]*)\|", readme, flags=re.M)
        assert row, f"README support matrix: no {label} row"
        lowest = [cell.strip().split(" – ")[0] for cell in row.groups() if "–" in cell]
        assert lowest and set(lowest) == {".".join(map(str, platform.FLOORS[name]))}, (label, row.group(0))


def test_importing_gan_tpu_backends_does_not_choose_keras_backend():
    code = ("import importlib.util, sys; from gan_tpu import kaggle, keras_backend, platform; "
            "assert importlib.util.find_spec('gan_tpu.backends.jax') is not None; "
            "print('keras' in sys.modules, 'tensorflow' in sys.modules)")
    out = fresh_python(["-c", code])
    assert out.stdout.split() == ["False", "False"], out.stderr[-2000:]


@pytest.mark.parametrize("kernel, fake_tpu, backend", [("tpu-cyclegan", True, "jax"),
                                                        ("gpu-cyclegan", False, "tensorflow")])
def test_the_notebooks_accelerator_cell_imports_no_keras(kernel, fake_tpu, backend):
    """A fresh interpreter runs the notebook's cells through the accelerator check; the TPU
    one on a host made to look like a Kaggle TPU VM (JAX patched to report "tpu")."""
    pytest.importorskip("jax")
    args = [os.path.join(ROOT, ".ci", "accelerator_cell.py"), kernel] + (["--fake-tpu"] if fake_tpu else [])
    out = fresh_python(args, **({} if fake_tpu else {"GAN_TPU_SMOKE": "1"}))
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert (got["backend"], got["KERAS_BACKEND"]) == (backend, backend)
    assert got["keras_imported"] is False and got["tensorflow_imported"] is False


def test_gan_tpu_stops_on_too_old_packages_before_any_command(monkeypatch, capsys):
    from gan_tpu import cli

    monkeypatch.setattr(platform, "distributions", lambda: dict(KAGGLE_TPU_IMAGE, numpy="1.24.4"))
    assert cli.main(["validate", "no-such.zip"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "numpy 1.24.4 (needs numpy>=1.26)" in err
    assert err.strip().endswith("fix: pip install -U 'numpy>=1.26', then restart")
