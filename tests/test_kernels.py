"""kernels/: every kernel's metadata passes the kaggle API's own checks, its notebook is in
sync with its .py twin, and its push. The notebooks themselves run end to end (executed in a
Jupyter kernel against a stand-in /kaggle tree, from the wheel) in `make test-compat`."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gan_tpu import kaggle as gk
from gan_tpu.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
KERNELS = gk.kernel_names(ROOT / "kernels")
needs_kaggle = pytest.mark.skipif(importlib.util.find_spec("kaggle") is None,
                                  reason="the kaggle package is not installed (pip install 'gan_tpu[kaggle]')")


def test_the_tpu_and_gpu_kernels_exist():
    assert {"tpu-cyclegan", "gpu-cyclegan"} <= set(KERNELS)


@pytest.mark.parametrize("name", KERNELS)
def test_metadata_has_what_the_kaggle_api_and_the_notebook_need(name):
    folder = ROOT / "kernels" / name
    meta = gk.read_metadata(folder)
    assert gk.check_metadata(meta, folder) == []
    accelerator = "tpu" if meta["enable_tpu"] == "true" else "gpu"
    assert meta["machine_shape"] == gk.MACHINE_SHAPES[accelerator]
    assert meta["enable_internet"] == "false"
    assert meta["competition_sources"] == ["gan-getting-started"]
    assert meta["dataset_sources"][0] == f"{gk.OWNER_PLACEHOLDER}/{gk.DATASET_SLUG}"
    assert meta["dataset_sources"][1:] == ([f"{gk.OWNER_PLACEHOLDER}/gan-tpu-generator"]
                                           if name == "gan-tpu-generate" else [])
    twin = gk.twin_path(folder).read_text()
    assert f'prepare_accelerator("{accelerator}"' in twin


@pytest.mark.parametrize("name", KERNELS)
def test_notebook_is_in_sync_with_its_twin(name):
    folder = ROOT / "kernels" / name
    assert gk.notebook_in_sync(folder), f"run: gan-tpu kernels --sync ({name})"
    nb = json.loads((folder / gk.read_metadata(folder)["code_file"]).read_text())
    cells = gk.script_cells(gk.twin_path(folder).read_text())
    assert [c["cell_type"] for c in nb["cells"]] == [kind for kind, _ in cells]
    assert ["".join(c["source"]) for c in nb["cells"]] == [body for _, body in cells]
    assert all(c["outputs"] == [] for c in nb["cells"] if c["cell_type"] == "code")
    # nbformat 4.5: every cell has a unique id
    assert (nb["nbformat"], nb["nbformat_minor"]) == (4, 5)
    assert len({c["id"] for c in nb["cells"]}) == len(nb["cells"])


def test_kernels_command_checks_every_kernel(capsys):
    from gan_tpu.cli import main

    assert main(["kernels"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sorted(out) == [f"kernels/{name}: ok" for name in KERNELS]


def test_script_cells_and_a_stale_notebook(tmp_path):
    text = "# header\n# %% [markdown]\n# # Title\n#\n# text\n\n# %%\nx = 1\n\n\n# %%\nprint(x)\n"
    assert gk.script_cells(text) == [("markdown", "# Title\n\ntext"), ("code", "x = 1"), ("code", "print(x)")]
    folder = tmp_path / "k"
    shutil.copytree(ROOT / "kernels" / "tpu-cyclegan", folder)
    assert gk.notebook_in_sync(folder)
    twin = gk.twin_path(folder)
    twin.write_text(twin.read_text() + "\n# %%\nprint('new cell')\n")
    assert not gk.notebook_in_sync(folder)
    with pytest.raises(UserError, match="out of date with its .py twin"):
        gk.push_kernel("k", root=tmp_path, upload_wheel=False, api=object())
    gk.sync_notebook(folder)
    assert gk.notebook_in_sync(folder)
    assert "print('new cell')" in (folder / "tpu-cyclegan.ipynb").read_text()


# --------------------------------------------------------------------------- push


@pytest.fixture
def api(tmp_path, monkeypatch):
    """A KaggleApi with a fake key; its network calls are stubbed below and record requests."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("KAGGLE_USERNAME", "monet-fan")
    monkeypatch.setenv("KAGGLE_KEY", "0123456789abcdef0123456789abcdef")
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    from gan_tpu.kaggle.api import load_api

    return load_api()


class Recorder:
    """Stands in for the network: kagglesdk's client for kernels, dataset calls by name."""

    def __init__(self, api, monkeypatch, dataset_exists=True, statuses=("ready", "running", "ready")):
        from kagglesdk.kernels.types.kernels_api_service import ApiSaveKernelResponse

        self.calls, self.statuses, self.exists = [], list(statuses), dataset_exists
        recorder = self

        class KernelsClient:
            def save_kernel(self, request):
                recorder.calls.append(("save_kernel", request))
                response = ApiSaveKernelResponse()
                response.url = f"https://www.kaggle.com/code/{request.slug}"
                response.version_number = 3
                return response

        class Client:
            kernels = type("Kernels", (), {"kernels_api_client": KernelsClient()})()

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        def dataset_status(self, dataset, format=None):
            recorder.calls.append(("dataset_status", dataset))
            if not recorder.exists:
                recorder.exists = True
                raise RuntimeError("404 Client Error: Not Found")
            return recorder.statuses.pop(0) if recorder.statuses else "ready"

        def upload(kind):
            def call(self, folder, *args, **kwargs):
                meta = json.loads(Path(folder, "dataset-metadata.json").read_text())
                recorder.calls.append((kind, sorted(os.listdir(folder)), meta, args, kwargs))
                return type("Response", (), {"error": None, "url": "u"})()
            return call

        cls = type(api)
        monkeypatch.setattr(cls, "build_kaggle_client", lambda self: Client())
        monkeypatch.setattr(cls, "dataset_status", dataset_status)
        monkeypatch.setattr(cls, "dataset_create_version", upload("dataset_create_version"))
        monkeypatch.setattr(cls, "dataset_create_new", upload("dataset_create_new"))


def _wheel(tmp_path):
    from gan_tpu import __version__

    folder = tmp_path / "dist"
    folder.mkdir()
    (folder / f"gan_tpu-{__version__}-py3-none-any.whl").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    return folder, f"gan_tpu-{__version__}-py3-none-any.whl"


@needs_kaggle
@pytest.mark.parametrize("name", KERNELS)
def test_push_uploads_the_wheel_then_the_kernel(name, api, tmp_path, monkeypatch):
    rec = Recorder(api, monkeypatch)
    wheel_dir, wheel_name = _wheel(tmp_path)
    lines, sleeps = [], []
    gk.push_kernel(name, wheel_dir=str(wheel_dir), api=api, sleep=sleeps.append, log=lines.append)
    kinds = [c[0] for c in rec.calls]
    assert kinds == ["dataset_status", "dataset_create_version", "dataset_status", "dataset_status", "save_kernel"]
    _, files, meta, args, kwargs = rec.calls[1]
    assert files == ["dataset-metadata.json", wheel_name]
    assert meta["id"] == "monet-fan/gan-tpu-wheel" and args[0].startswith("gan_tpu ")
    assert sleeps == [10]  # waited once for the new version to be ready
    request = rec.calls[-1][1]
    local = gk.read_metadata(ROOT / "kernels" / name)
    tpu = local["enable_tpu"] == "true"
    assert request.slug == local["id"].replace(gk.OWNER_PLACEHOLDER, "monet-fan")
    assert request.new_title == local["title"]
    assert request.language == "python" and request.kernel_type == "notebook"
    assert request.enable_tpu is tpu and request.enable_gpu is (not tpu)
    assert request.enable_internet is False and request.is_private is True
    assert request.machine_shape == ("TpuV5E8" if tpu else "NvidiaTeslaT4")
    assert request.dataset_data_sources == [s.replace(gk.OWNER_PLACEHOLDER, "monet-fan")
                                            for s in local["dataset_sources"]]
    assert request.competition_data_sources == ["gan-getting-started"]
    sent = json.loads(request.text)
    assert [c["cell_type"] for c in sent["cells"]][:2] == ["markdown", "code"]
    assert "gan_tpu-*.whl" in sent["cells"][1]["source"]
    assert lines[-1].startswith(f"pushed: https://www.kaggle.com/code/monet-fan/")


@needs_kaggle
def test_push_creates_the_dataset_the_first_time(api, tmp_path, monkeypatch):
    rec = Recorder(api, monkeypatch, dataset_exists=False, statuses=())
    wheel_dir, _ = _wheel(tmp_path)
    gk.push_kernel("gpu-cyclegan", wheel_dir=str(wheel_dir), api=api, sleep=lambda s: None, log=lambda m: None)
    assert [c[0] for c in rec.calls] == ["dataset_status", "dataset_create_new", "dataset_status", "save_kernel"]
    assert rec.calls[1][4]["public"] is False
    rec.calls.clear()
    gk.push_kernel("gpu-cyclegan", upload_wheel=False, dataset="team/gan-tpu-wheel", api=api, log=lambda m: None)
    assert [c[0] for c in rec.calls] == ["save_kernel"]
    assert rec.calls[0][1].dataset_data_sources == ["team/gan-tpu-wheel"]


# --------------------------------------------------------------------------- the generation kernel
# The training notebooks run in `make test-compat` (executed offline against a stand-in
# /kaggle); the generation notebook, which trains nothing, runs here as its twin.


def test_generation_twin_paints_and_accounts_for_the_budget(tmp_path):
    """`make submit`'s notebook in smoke mode: paints images.zip from a generator and writes
    training + generation seconds to budget.json."""
    work = tmp_path / "gan-tpu-generate"
    env = dict(os.environ, GAN_TPU_SMOKE="1", GAN_TPU_WORKING=str(work), PYTHONPATH=str(ROOT),
               GAN_TPU_CACHE=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("KERAS_BACKEND", None)
    twin = gk.twin_path(ROOT / "kernels" / "gan-tpu-generate")
    proc = subprocess.run([sys.executable, str(twin)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:]
    assert "smoke mode" in out and "VALID:" in out
    with zipfile.ZipFile(work / "images.zip") as zf:
        assert len(zf.namelist()) == 8 and all(n.endswith(".jpg") for n in zf.namelist())
    record = json.loads((work / "budget.json").read_text())
    assert record["train_seconds"] == 60.0 and 0 < record["generation_seconds"] < record["total_seconds"]
    assert "budget: training 0.02 h + generation" in out


# --------------------------------------------------------------------------- BENCHMARKS.md


def test_benchmark_sections_are_regenerated_alone():
    """bench_suite rewrites only the sections it ran; others (e.g. merged from other machines) stay."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_suite
    finally:
        sys.path.pop(0)
    existing = (ROOT / "BENCHMARKS.md").read_text()
    sections = dict(m.group(1, 0) for m in bench_suite._SECTION.finditer(existing))
    assert set(bench_suite.SECTIONS) <= set(sections)
    foreign = "<!-- bench:train_step@h100 -->\n## from elsewhere\n<!-- /bench:train_step@h100 -->"
    fresh = bench_suite.render("score", ["| a | b |"], "PYTHONPATH=. python x.py", 1.0, "test machine")
    merged = bench_suite.merge(existing + "\n" + foreign + "\n", {"score": fresh})
    again = dict(m.group(1, 0) for m in bench_suite._SECTION.finditer(merged))
    assert again["score"] == fresh and again["train_step@h100"] == foreign
    assert all(again[k] == sections[k] for k in sections if k != "score")
    # text outside the markers (hand-written sections, notes) stays where it was
    assert merged.replace(fresh, sections["score"]) == existing + "\n" + foreign + "\n"
    added = bench_suite.render("not-yet-there", ["| c |"], "python y.py", 1.0, "test machine")
    assert bench_suite.merge(existing, {"not-yet-there": added}) == existing.rstrip("\n") + "\n\n" + added + "\n"
    lines = bench_suite.generate_table(
        "300 photos, 2 CPUs, medians of 3\n"
        "demo  starter                   : process 66.0 s (1.00x the starter's), generate+zip 42.6 s (7.04 img/s)\n"
        "demo  ours resize tensorflow    : process 27.8 s (2.37x the starter's), generate+zip 7.7 s (38.96 img/s); "
        "bare forward 41.20 img/s; generate at 91 % of it (whole call), 98 % (after the first batch), "
        "60 % (CPU time per image)\n")
    assert lines[0] == "300 photos (256x256 JPEGs) per run, each run a fresh process; median of 3."
    assert lines[-2:] == ["| demo | starter (eager + PIL + make_archive) | 42.6 | 7.04 | 66.0 | 1.00x | - | - |",
                          "| demo | gan_tpu write_submission (resize, tensorflow) | 7.7 | 38.96 | 27.8 | 2.37x | 41.20 "
                          "| 91 %, 98 %, 60 % |"]
