"""gan_tpu.kaggle on a stand-in /kaggle tree: the competition data, the wheel and an Inception
network found in both mount layouts, the not-found line, evaluation only with a real
Inception, the GPU check's refusal, the run's outputs kept next to images.zip, and no
advice that would disqualify a notebook (Internet on, pip install)."""
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gan_tpu import kaggle as gk
from gan_tpu.errors import UserError
from gan_tpu.kaggle.notebooks import inception_source

ROOT = Path(__file__).resolve().parent.parent
LAYOUTS = {"new": "competitions/gan-getting-started", "old": "gan-getting-started"}
WHEEL_DIRS = {"new": "datasets/monet-fan/gan-tpu-wheel", "old": "gan-tpu-wheel"}


def kaggle_tree(tmp_path, layout, records=True, wheel=True):
    """/kaggle as Kaggle mounts it: the competition's folders (empty: discovery looks only at
    their names), the wheel dataset, a working folder."""
    root = tmp_path / "kaggle"
    data = root / "input" / LAYOUTS[layout]
    for sub in ("monet_tfrec", "photo_tfrec") if records else ("monet_jpg", "photo_jpg"):
        (data / sub).mkdir(parents=True)
    if wheel:
        (root / "input" / WHEEL_DIRS[layout]).mkdir(parents=True)
        (root / "input" / WHEEL_DIRS[layout] / "gan_tpu-0.1.0-py3-none-any.whl").write_bytes(b"PK")
    (root / "working").mkdir()
    return root, data


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("records", [True, False], ids=["tfrec", "jpg"])
def test_competition_data_in_both_layouts(tmp_path, layout, records):
    root, data = kaggle_tree(tmp_path, layout, records)
    lines = []
    env = {"GAN_TPU_KAGGLE_ROOT": str(root)}
    assert gk.competition_data(env=env, log=lines.append) == str(data)
    assert lines == [f"competition data: {data}"]
    assert gk.data_root(env) == str(data)
    wheel = gk.find_input(("gan_tpu-*.whl",), str(root / "input"))
    assert wheel == str(root / "input" / WHEEL_DIRS[layout] / "gan_tpu-0.1.0-py3-none-any.whl")


def test_competition_data_elsewhere_is_found_by_its_folders_to_a_bounded_depth(tmp_path):
    root = tmp_path / "input"
    nested = root / "datasets" / "someone" / "monet-copy" / "data"  # depth 4
    for sub in ("monet_jpg", "photo_jpg"):
        (nested / sub).mkdir(parents=True)
    assert gk.find_competition_data(str(root)) == str(nested)
    deeper = root / "a" / "b" / "c" / "d" / "e"  # depth 5: beyond the bound
    for sub in ("monet_tfrec", "photo_tfrec"):
        (deeper / sub).mkdir(parents=True)
    (nested / "monet_jpg").rmdir()
    assert gk.find_competition_data(str(root)) is None
    # The known places win over a search.
    known = root / "gan-getting-started"
    for sub in ("monet_tfrec", "photo_tfrec"):
        (known / sub).mkdir(parents=True)
    assert gk.find_competition_data(str(root)) == str(known)


def test_no_competition_data_stops_with_one_line_naming_what_is_attached(tmp_path):
    root, data = kaggle_tree(tmp_path, "new")
    (data / "photo_tfrec").rmdir()  # a competition folder without its photos is not the data
    (root / "input" / "models" / "google" / "inception").mkdir(parents=True)
    with pytest.raises(UserError) as err:
        gk.competition_data(env={"GAN_TPU_KAGGLE_ROOT": str(root)}, log=lambda m: None)
    message = str(err.value)
    assert "\n" not in message
    assert (f"under {root}/input: {root}/input holds competitions/gan-getting-started, "
            f"datasets/monet-fan/gan-tpu-wheel, models/google/inception;") in message
    assert message.endswith("attach it: Add Input > Competitions > gan-getting-started")
    assert gk.input_listing(str(tmp_path / "none")).endswith("none does not exist")
    (tmp_path / "empty").mkdir()
    assert gk.input_listing(str(tmp_path / "empty")).endswith("empty is empty")


def test_a_tpu_node_reads_the_gcs_copy(tmp_path):
    root, data = kaggle_tree(tmp_path, "old")
    lines = []
    env = {"GAN_TPU_KAGGLE_ROOT": str(root), "TPU_NAME": "grpc://10.0.0.2:8470"}
    got = gk.competition_data(env=env, log=lines.append, gcs_path=lambda: "gs://kds-1/gan-getting-started")
    assert got == "gs://kds-1/gan-getting-started" and str(data) in lines[0]


@pytest.mark.parametrize("where", ["datasets/monet-fan/inception-2015-12-05",
                                   "models/google/inception/tensorFlow1/2015-12-05/1", "inception-2015-12-05"])
def test_inception_found_as_a_dataset_or_a_model(tmp_path, where):
    root, _ = kaggle_tree(tmp_path, "new")
    lines = []
    assert gk.inception_file(str(root / "input"), log=lines.append) is None
    assert "evaluation during training is off, every photo trains" in lines[0]
    graph = root / "input" / where / "classify_image_graph_def.pb"
    graph.parent.mkdir(parents=True)
    graph.write_bytes(b"not loaded here")
    assert gk.inception_file(str(root / "input"), log=lines.append) == str(graph)
    assert lines[1] == f"Inception network: {graph}"
    assert gk.score_extractor(str(root / "input")) == f"kaggle:{graph}"


def test_scratch_dir_is_outside_the_output(tmp_path):
    root, _ = kaggle_tree(tmp_path, "new")
    env = {"GAN_TPU_KAGGLE_ROOT": str(root)}
    assert gk.scratch_dir(env) == "/tmp/gan_tpu_run"
    (root / "temp").mkdir()
    assert gk.scratch_dir(env) == str(root / "temp" / "gan_tpu_run")
    assert gk.working_dir(env) == str(root / "working")
    assert gk.scratch_dir({"GAN_TPU_SCRATCH": "/x"}) == "/x"


def test_keep_outputs_copies_what_a_person_looks_at_and_no_checkpoint(tmp_path):
    run, work = tmp_path / "run", tmp_path / "working"
    for rel, size in [("config.toml", 10), ("history.csv", 10), ("plots.png", 10), ("samples/epoch_001.png", 10),
                      ("eval/scores.csv", 10), ("checkpoints/ckpt-1.data-00000-of-00001", 10),
                      ("generator.keras", 10), ("samples/huge.png", gk.outputs.MAX_BYTES + 1)]:
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_bytes(b"x" * size)
    work.mkdir()
    kept = gk.keep_outputs(str(run), str(work), log=lambda m: None)
    assert sorted(kept) == ["config.toml", "eval_scores.csv", "history.csv", "plots.png", "samples/epoch_001.png"]
    assert sorted(p.name for p in work.rglob("*") if p.is_file()) == sorted(os.path.basename(k) for k in kept)


def test_inception_handle_goes_to_the_kernels_sources():
    meta = gk.read_metadata(ROOT / "kernels" / "tpu-cyclegan")
    staged = gk.staged_metadata(meta, "monet-fan", inception="monet-fan/inception-2015-12-05")
    assert staged["dataset_sources"] == ["monet-fan/gan-tpu-wheel", "monet-fan/inception-2015-12-05"]
    staged = gk.staged_metadata(meta, "monet-fan", inception="google/inception/tensorFlow1/2015-12-05/1")
    assert staged["model_sources"] == ["google/inception/tensorFlow1/2015-12-05/1"]
    assert staged["dataset_sources"] == ["monet-fan/gan-tpu-wheel"]
    assert inception_source("a/b") == ("dataset_sources", "a/b")
    with pytest.raises(UserError, match="INCEPTION='a/b/c'"):
        inception_source("a/b/c")


def test_the_gpu_check_refuses_when_tensorflow_sees_no_gpu_the_driver_shows():
    """The driver (a stand-in) shows two T4s; the real TensorFlow, asked in a subprocess on
    this CPU-only machine, sees none: stop, in one line, instead of a 5-hour CPU run."""
    driver = lambda: ["GPU 0: Tesla T4", "GPU 1: Tesla T4"]  # noqa: E731
    with pytest.raises(UserError) as err:
        gk.prepare_accelerator("gpu", env={}, log=lambda m: None, driver_gpus=driver)
    message = str(err.value)
    assert "\n" not in message and message.startswith("the driver shows 2 GPU(s)")
    assert "TensorFlow sees none: TensorFlow lists no GPU" in message and "not training on the CPU" in message
    # Smoke mode does not excuse it: GPUs the framework cannot use are a broken image.
    with pytest.raises(UserError, match="TensorFlow sees none"):
        gk.prepare_accelerator("gpu", smoke=True, env={}, log=lambda m: None, driver_gpus=driver,
                               tensorflow_gpus=lambda: (0, "TensorFlow does not start (ImportError)"))
    env = {}
    plan = gk.prepare_accelerator("gpu", env=env, log=lambda m: None, driver_gpus=driver,
                                  tensorflow_gpus=lambda: (2, None))
    assert plan.backend == "tensorflow" and "MirroredStrategy over 2 GPU(s)" in plan.reason
    assert env == {"KERAS_BACKEND": "tensorflow"}


def test_framework_gpus_reports_a_tensorflow_that_does_not_start(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ImportError: libcudart.so.12: cannot open shared object file' >&2\nexit 1\n")
    fake.chmod(0o755)
    assert gk.framework_gpus(str(fake)) == (0, "TensorFlow does not start (ImportError: libcudart.so.12: "
                                                "cannot open shared object file)")


def _strings(path: Path) -> list[str]:
    """Every string literal (f-string parts included) in a Python file."""
    tree = ast.parse(path.read_text())
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_message_tells_the_user_to_turn_internet_on_or_pip_install():
    """A notebook with Internet on cannot be submitted, and Kaggle's TPU image dropped tensorflow-tpu."""
    files = [ROOT / "gan_tpu" / "platform.py", *sorted((ROOT / "gan_tpu" / "kaggle").glob("*.py")),
             *sorted((ROOT / "kernels").glob("*/*.py"))]
    bad = re.compile(r"internet on|enable internet|turn on internet|pip install tensorflow-tpu|"
                     r"pip uninstall", re.I)
    found = [(p.name, s) for p in files for s in _strings(p) if bad.search(s)]
    assert found == []
    # The running checks' messages, too.
    facts = gk.TpuFacts("vm", {"tensorflow-cpu": "2.20.0", "jax": "0.7.2"}, True, jax_platform="cpu")
    with pytest.raises(UserError) as err:
        gk.prepare_accelerator("tpu", facts=facts, env={}, log=lambda m: None)
    assert not bad.search(str(err.value)) and "pip install" not in str(err.value)


def test_the_notebooks_install_the_wheel_from_either_layout(tmp_path):
    """The install cell's own bounded search (gan_tpu is not importable before it)."""
    twin = (ROOT / "kernels" / "tpu-cyclegan" / "tpu-cyclegan.py").read_text()
    line = next(ln for ln in twin.splitlines() if ln.startswith("wheels = "))
    body = line + "\n" + twin.splitlines()[twin.splitlines().index(line) + 1]
    for layout in LAYOUTS:
        root, _ = kaggle_tree(tmp_path / layout, layout)
        code = f"import glob, os\nINPUT = {str(root / 'input')!r}\n{body}\nprint(wheels[-1])"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == str(root / "input" / WHEEL_DIRS[layout] / "gan_tpu-0.1.0-py3-none-any.whl")


@pytest.mark.parametrize("kernel", ["tpu-cyclegan", "gpu-cyclegan"])
def test_the_notebooks_evaluate_only_with_an_attached_inception(tmp_path, kernel):
    """The notebook's cells up to its settings, on a stand-in /kaggle in smoke mode: no
    Inception, [eval] off (every photo trains); one attached (a stand-in file: nothing here
    loads it), [eval] on with it. Both notebooks run the same lines, in one process each."""
    root, data = kaggle_tree(tmp_path, "new", wheel=False)
    graph = root / "input" / "datasets" / "monet-fan" / "inception-2015-12-05" / "classify_image_graph_def.pb"
    twin = (ROOT / "kernels" / kernel / f"{kernel}.py").read_text()
    cells = [body for kind, body in gk.script_cells(twin) if kind == "code"]
    upto = next(i for i, cell in enumerate(cells) if "SETTINGS" in cell) + 1
    code = ("import json, os, pathlib, sys\n"
            "for attach in (False, True):\n"
            "    if attach:\n"
            f"        pathlib.Path({str(graph)!r}).parent.mkdir(parents=True)\n"
            f"        pathlib.Path({str(graph)!r}).write_bytes(b'stand-in')\n"
            "    scope = {'__name__': '__main__'}\n"
            f"    for cell in {cells[:upto]!r}:\n"
            "        exec(cell, scope)\n"
            "    print(json.dumps([scope['DATA'], scope['INCEPTION'], scope['RUN_DIR'], scope['SETTINGS']]))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), GAN_TPU_SMOKE="1", GAN_TPU_KAGGLE_ROOT=str(root),
               TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    for key in ("KERAS_BACKEND", "GAN_TPU_WORKING", "GAN_TPU_SCRATCH"):
        env.pop(key, None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("[")]
    (data_off, none, run_dir, off), (_, found, _, on) = runs
    assert data_off == str(data) and none is None and found == str(graph)
    assert run_dir == "/tmp/gan_tpu_run/cyclegan"  # scratch, not /kaggle/working
    assert not any(s.startswith("eval.every") or s.startswith("eval.extractor") for s in off)
    assert "eval.every=" + ("25" if kernel.startswith("tpu") else "1") in on
    assert f'eval.extractor="kaggle:{graph}"' in on
    assert "no Inception network attached" in out.stdout and f"Inception network: {graph}" in out.stdout
