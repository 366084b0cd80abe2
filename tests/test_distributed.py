"""gan_tpu.distributed: which job to join, the errors, each process's rows of a global batch,
and the one writer. The two-process rehearsal itself is tests/test_multihost.py (slow)."""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from gan_tpu import data, distributed
from gan_tpu.errors import UserError
from gan_tpu.sample_data import write_sample_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB = {distributed.ADDRESSES: "10.0.0.1:1234", distributed.NUM_PROCESSES: "2", distributed.PROCESS_ID: "1"}


def test_one_process_unless_asked():
    assert distributed.requested("auto", {}) is None
    assert distributed.requested(1, JOB) is None  # runtime.processes = 1: never join
    assert distributed.requested("auto", JOB) == {"coordinator": "10.0.0.1:1234", "num_processes": 2,
                                                  "process_id": 1}


def test_keras_address_list_and_tpu_pod():
    env = {distributed.ADDRESSES: "10.0.0.1:1234,10.0.0.2:1234", distributed.PROCESS_ID: "0"}
    assert distributed.requested("auto", env) == {"coordinator": "10.0.0.1:1234", "num_processes": 2,
                                                  "process_id": 0}
    pod = {"TPU_WORKER_HOSTNAMES": "t1k-w-0,t1k-w-1,t1k-w-2,t1k-w-3"}
    assert distributed.requested("auto", pod) == {"coordinator": None, "num_processes": None, "process_id": None}
    assert distributed.requested("auto", {"TPU_WORKER_HOSTNAMES": "localhost"}) is None  # one host
    assert distributed.requested(2, {distributed.ADDRESSES: "h:1", distributed.PROCESS_ID: "1"})["num_processes"] == 2


@pytest.mark.parametrize("processes, env, named", [
    ("auto", {distributed.ADDRESSES: "h:1"}, distributed.PROCESS_ID),
    ("auto", {**JOB, distributed.PROCESS_ID: "2"}, distributed.PROCESS_ID),
    ("auto", {**JOB, distributed.NUM_PROCESSES: "two"}, distributed.NUM_PROCESSES),
    ("auto", {**JOB, distributed.ADDRESSES: "a:1,b:1,c:1"}, distributed.ADDRESSES),
    (3, JOB, "runtime.processes"),
    (2, {}, distributed.ADDRESSES),
    ("four", {}, "runtime.processes"),
    (0, {}, "runtime.processes"),
])
def test_bad_job_names_the_variable(processes, env, named):
    with pytest.raises(UserError, match=named):
        distributed.requested(processes, env)


def _cli(args, env_extra, timeout=120):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3", **env_extra}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "gan_tpu.cli", *args], capture_output=True, text=True,
                         env=env, timeout=timeout, cwd=ROOT)
    return out, time.monotonic() - started


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_single_process_imports_nothing_new():
    code = ("import sys; from gan_tpu import distributed; "
            "n = distributed.start({'runtime': {'processes': 'auto'}, 'eval': {'every': 0}}); "
            "print(n, 'jax' in sys.modules, distributed.is_writer())")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_DISTRIBUTION")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**env, "PYTHONPATH": ROOT},
                         timeout=300)
    assert out.stdout.split() == ["1", "False", "True"], out.stderr


@pytest.mark.parametrize("process", ["1", "0"])
def test_a_job_that_does_not_form_ends_in_one_line_within_the_timeout(tmp_path, process):
    """Process 1 of 2 with no coordinator listening, or process 0 of 2 (the coordinator)
    alone, as with a wrong process count: one line naming the address and the variables,
    exit 2, after the connect timeout (5 s; JAX's own would abort after 5 minutes with a
    stack dump)."""
    env = {distributed.ADDRESSES: f"127.0.0.1:{_free_port()}", distributed.NUM_PROCESSES: "2",
           distributed.PROCESS_ID: process, distributed.TIMEOUT: "5", "KERAS_BACKEND": "jax"}
    out, took = _cli(["train", "demo", "--out", str(tmp_path / "run"), "--set", 'runtime.backend="jax"'], env)
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("gan-tpu: error:")]
    assert len(errors) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert env[distributed.ADDRESSES] in errors[0] and distributed.ADDRESSES in errors[0]
    assert f"process {process} of 2" in errors[0] and "within 5 s" in errors[0]
    assert took < 100  # start-up (imports: up to a minute on a busy 2-core machine) + 5 s
    assert not (tmp_path / "run").exists()


def test_tensorflow_backend_is_refused(tmp_path):
    out, _ = _cli(["train", "demo", "--out", str(tmp_path / "run"), "--coordinator", "127.0.0.1:9",
                   "--num-processes", "2", "--process-id", "0", "--set", 'runtime.backend="tensorflow"'], {})
    assert out.returncode == 2
    assert "needs Keras' JAX backend" in out.stderr and "Traceback" not in out.stderr


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data"))
    write_sample_data(root, monet=5, photo=7, size=32, seed=1)
    return data.resolve(root, "monet"), data.resolve(root, "photo")


def _batches(sources, process, processes, global_batch=4, steps=3):
    distributed._state.update(index=process, count=processes)
    try:
        ds = data.training_stream(*sources, first_epoch=0, epochs=2, steps=steps, seed=5,
                                  global_batch=global_batch, image_size=32, source_size=32, shuffle_buffer=8)
        return [tuple(part.numpy() for part in batch) for batch in ds]
    finally:
        distributed._state.update(index=0, count=1)


def test_process_shares_make_the_single_process_batch(sources):
    """Each of 2 (or 4) processes gets its rows of every global batch, augmented as one
    process would: concatenated in process order they are the one process's batches."""
    alone = _batches(sources, 0, 1)
    assert len(alone) == 6 and alone[0][0].shape == (4, 32, 32, 3)
    for processes in (2, 4):
        shares = [_batches(sources, p, processes) for p in range(processes)]
        for step, batch in enumerate(alone):
            for domain in range(2):
                joined = np.concatenate([shares[p][step][domain] for p in range(processes)])
                np.testing.assert_array_equal(joined, batch[domain])
    with pytest.raises(UserError, match="does not split over 3 processes"):
        _batches(sources, 0, 3)


def test_only_process_zero_writes_where_asked():
    cfg = {"output": {"dir": "/runs/x"}, "train": {"epochs": 1}}
    assert distributed.local_config(cfg) is cfg and distributed.local_path("/runs/x/images.zip") == "/runs/x/images.zip"
    distributed._state.update(index=1, count=2)
    try:
        other = distributed.local_config(cfg)
        zip_path = distributed.local_path("/runs/x/images.zip")
    finally:
        distributed._state.update(index=0, count=1)
    assert cfg["output"]["dir"] == "/runs/x" and other["train"] == cfg["train"]
    assert other["output"]["dir"] != "/runs/x" and "gan_tpu-process1-" in other["output"]["dir"]
    assert zip_path.endswith("images.zip") and "gan_tpu-process1-" in zip_path


_TWO_PROCESS_CHECK = r"""
import hashlib, json, os, sys
from gan_tpu import distributed

distributed.start({"runtime": {"processes": 2}, "eval": {"every": 0}})
me = distributed.index()
run_dir = sys.argv[1] if me == 0 else "/nonexistent/run"  # process 1 cannot read process 0's folder
cfg = distributed.local_config({"output": {"dir": run_dir}, "train": {"epochs": 1}}, resume=True)
ckpt = os.path.join(cfg["output"]["dir"], "checkpoints")
files = {}
for name in sorted(os.listdir(ckpt)):
    with open(os.path.join(ckpt, name), "rb") as fh:
        files[name] = hashlib.sha256(fh.read()).hexdigest()
clock = distributed.one_clock(None, lambda: 100.0 * (me + 1))
readings = [clock(), clock()]
print(json.dumps({"me": me, "count": distributed.count(), "writer": distributed.is_writer(),
                  "dir": cfg["output"]["dir"], "files": files, "start": clock.command_start, "readings": readings}))
"""


def test_two_processes_resume_process_zero_checkpoints_and_read_its_clock(tmp_path):
    """Two real processes (JAX on CPU, gloo): on resume process 1 gets process 0's checkpoint
    files byte for byte in its scratch folder, and both read process 0's clock."""
    ckpt = tmp_path / "run" / "checkpoints"
    ckpt.mkdir(parents=True)
    rng = np.random.default_rng(0)
    payloads = {"checkpoint": b'model_checkpoint_path: "ckpt-2"\n', "ckpt-2.index": rng.bytes(1000),
                "ckpt-2.data-00000-of-00001": rng.bytes(300_001), "empty": b""}
    for name, payload in payloads.items():
        (ckpt / name).write_bytes(payload)
    port = _free_port()
    procs = []
    for i in range(2):
        env = {**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": "jax", distributed.TIMEOUT: "60",
               distributed.ADDRESSES: f"127.0.0.1:{port}", distributed.PROCESS_ID: str(i)}
        procs.append(subprocess.Popen([sys.executable, "-c", _TWO_PROCESS_CHECK, str(tmp_path / "run")], env=env,
                                      text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    zero, one = results
    assert (zero["me"], one["me"], zero["count"], zero["writer"], one["writer"]) == (0, 1, 2, True, False)
    assert zero["dir"] == str(tmp_path / "run") and "gan_tpu-process1-" in one["dir"]
    assert one["files"] == zero["files"] and len(zero["files"]) == 4
    assert not os.path.exists(os.path.dirname(one["dir"]))  # the scratch folder is removed at exit
    assert one["start"] == zero["start"] and one["readings"] == zero["readings"]
