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

from gan_tpu import data, distributed, job_watch
from gan_tpu.pixels import to_float
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
best = {n: os.path.isfile(os.path.join(cfg["output"]["dir"], n)) for n in ("generator_best.keras", "eval/best.json")}
clock = distributed.one_clock(None, lambda: 100.0 * (me + 1))
readings = [clock(), clock()]
import numpy as np
from gan_tpu.metrics import shares
# [eval]'s combine: process 0 holds photos 0-3 (and a padding row), process 1 photos 4-5
places = np.array([0, 1, 2, 3, 6]) if me == 0 else np.array([5, 4])
rows = np.stack([np.full(3, p, np.float32) for p in places])
gathered = shares.gathered_rows(places, rows, 6)[:, 0].tolist()
scores = shares.agreed({"fid": 1e6 + 1 / 3, "distance": None, "mifid": 7.0} if me == 0 else {})
print(json.dumps({"me": me, "count": distributed.count(), "writer": distributed.is_writer(),
                  "dir": cfg["output"]["dir"], "files": files, "start": clock.command_start, "readings": readings,
                  "best": best, "gathered": gathered, "scores": scores, "agree": distributed.agree(me == 0),
                  "wide": float(distributed.broadcast(np.float64(1e6 + 1 / 3) * (me + 1)))}))
"""


def test_two_processes_resume_process_zero_checkpoints_and_read_its_clock(tmp_path):
    """Two real processes (JAX on CPU, gloo): on resume process 1 gets process 0's checkpoint
    files byte for byte in its scratch folder (and [eval]'s best), both read process 0's
    clock, and [eval]'s rows and scores combine across them."""
    ckpt = tmp_path / "run" / "checkpoints"
    ckpt.mkdir(parents=True)
    rng = np.random.default_rng(0)
    payloads = {"checkpoint": b'model_checkpoint_path: "ckpt-2"\n', "ckpt-2.index": rng.bytes(1000),
                "ckpt-2.data-00000-of-00001": rng.bytes(300_001), "empty": b""}
    for name, payload in payloads.items():
        (ckpt / name).write_bytes(payload)
    (tmp_path / "run" / "eval").mkdir()
    (tmp_path / "run" / "eval" / "best.json").write_text('{"epoch": 2, "mifid": 50.0}')
    (tmp_path / "run" / "generator_best.keras").write_bytes(rng.bytes(5000))
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
    # [eval]: its best so far sent on resume; the rows gathered in order; process 0's scores
    # and decision, its float64 values whole (JAX without x64 would round them to float32)
    assert one["best"] == zero["best"] == {"generator_best.keras": True, "eval/best.json": True}
    assert one["gathered"] == zero["gathered"] == [0, 1, 2, 3, 4, 5]
    assert one["scores"] == zero["scores"] == {"fid": 1e6 + 1 / 3, "distance": None, "mifid": 7.0}
    assert one["agree"] is zero["agree"] is True and one["wide"] == zero["wide"] == 1e6 + 1 / 3


_LOOP_UNTIL_A_PEER_GOES = r"""
import os, sys, time
import numpy as np
from gan_tpu import distributed, job_watch, quiet

quiet.NativeLogFilter()  # as the CLI installs it: JAX's fatal lines go through job_watch
distributed.start({"runtime": {"processes": 3}, "eval": {"every": 0}})
step = 0
try:
    while True:  # process 0's clock, read by all: a collective every 20 ms
        distributed.broadcast(np.float64(step))
        step += 1
        if step == 20:
            print("running", flush=True)
        time.sleep(0.02)
except Exception as err:
    if job_watch.lost_peer(err):
        job_watch.end_after(err)
    raise
"""


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0])
def test_a_process_gone_ends_the_others_in_one_line(victim):
    """Three processes in a loop of collectives; one is killed (1, or 0: the coordinator).
    The other two end with exit 3 and one line naming the process gone and --resume, within
    the heartbeat timeout (10 s) and a few polls: not JAX's fatal error (exit 134, a stack dump)."""
    port = _free_port()
    procs = []
    for i in range(3):
        env = {**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": "jax", distributed.TIMEOUT: "40",
               distributed.ADDRESSES: f"127.0.0.1:{port}", distributed.PROCESS_ID: str(i)}
        procs.append(subprocess.Popen([sys.executable, "-c", _LOOP_UNTIL_A_PEER_GOES], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        for line in procs[victim].stdout:  # (gloo prints its own lines first)
            if line.strip() == "running":
                break
        assert procs[victim].poll() is None, procs[victim].stderr.read()[-2000:]
        procs[victim].kill()
        killed = time.monotonic()
        for i, p in enumerate(procs):
            if i == victim:
                continue
            _, err = p.communicate(timeout=90)
            took = time.monotonic() - killed
            lines = [line for line in err.splitlines() if line.strip()]
            assert p.returncode == job_watch.EXIT_STATUS and len(lines) == 1, (p.returncode, err[-3000:].replace("\n", " | "))
            gone = f"process 0 of 3 (the coordinator, 127.0.0.1:{port})" if victim == 0 else "process 1 of 3 stopped"
            assert lines[0].startswith("gan-tpu: error: " + gone) and "--resume" in lines[0], lines[0]
            assert f"process {i} stops too" in lines[0]
            print(f"process {i} ended {took:.1f} s after process {victim} was killed")
            assert took < 40, took
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_which_errors_mean_a_process_gone():
    gloo = ValueError("UNKNOWN: Gloo all-reduce failed: [external/gloo/gloo/transport/tcp/pair.cc:547] "
                      "Connection closed by peer [127.0.0.1]:23958")
    assert not job_watch.lost_peer(gloo)  # one process: nothing to lose
    job_watch._job.update(count=2)
    try:
        assert job_watch.lost_peer(gloo)
        assert job_watch.lost_peer(RuntimeError("UNAVAILABLE: Task 1 heartbeat timeout."))
        assert not job_watch.lost_peer(ValueError("operands could not be broadcast together"))
        assert not job_watch.lost_peer(KeyboardInterrupt())
    finally:
        job_watch._job.update(count=1)
    fatal = (b"F1204 22:24:14.886840   18509 client.h:80] Terminating process because the JAX distributed "
             b"service detected fatal errors. This most likely indicates that another task died")
    assert job_watch.FATAL.match(fatal) and not job_watch.FATAL.match(b"E1204 22:24:14.88 1 x.cc:1] fine")
    assert not job_watch.fatal_line(fatal)  # one process: left to the filter's other rules


@pytest.fixture(scope="module")
def four_files(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("four"))
    write_sample_data(root, monet=60, photo=1, size=32, seed=3)  # monet: 4 files of 15
    return data.resolve(root, "monet")


def _rows_read(source, process, processes, global_batch, rows):
    """The first `rows` images process `process` of `processes` decodes (unaugmented), as bytes."""
    distributed._state.update(index=process, count=processes)
    try:
        ds = data.domain_dataset(source, image_size=32, source_size=32, seed=7, augment_images=False,
                                 global_batch=global_batch)
        return [image.numpy().tobytes() for image in ds.take(rows)]
    finally:
        distributed._state.update(index=0, count=1)


def test_enough_files_are_split_by_file_and_every_row_is_read_once_per_epoch(four_files):
    """4 record files over 2 (or 4) processes: each reads its files (i::P) and, over an epoch
    (the data once: 60 rows in global batches of 4), the processes' rows together are every
    row exactly once. 3 processes do not divide 4 files: split by rows."""
    assert len(four_files.files) == 4 and four_files.count == 60
    everything = sorted(to_float(image).numpy().tobytes() for image in data.source_images(four_files, 32))
    assert len(set(everything)) == 60
    for processes in (2, 4):
        distributed._state.update(index=1, count=processes)
        try:
            assert distributed.process_files(four_files.files, "tfrec") == four_files.files[1::processes]
        finally:
            distributed._state.update(index=0, count=1)
        read = [row for p in range(processes) for row in _rows_read(four_files, p, processes, 4, 60 // processes)]
        assert sorted(read) == everything
    distributed._state.update(count=3)
    try:
        assert distributed.process_files(four_files.files, "tfrec") is None
        assert distributed.process_files(four_files.files[:3], "jpg") is None
    finally:
        distributed._state.update(count=1)


def test_each_row_of_a_file_split_step_has_its_own_seed():
    """Reading by file, process i's k-th element takes the place (hence the augmentation
    seed) the single process's element at that place of the global batches would have."""
    for processes, global_batch in ((2, 4), (4, 4), (2, 6)):
        places = []
        for p in range(processes):
            distributed._state.update(index=p, count=processes)
            try:
                places += [int(distributed.global_position(i, global_batch)) for i in range(30 // processes * 2)]
            finally:
                distributed._state.update(index=0, count=1)
        assert sorted(places) == list(range(len(places))), (processes, global_batch)


def test_tf_config_with_several_workers_is_refused_in_one_line():
    two = {"TF_CONFIG": json.dumps({"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
                                    "task": {"type": "worker", "index": 0}})}
    with pytest.raises(UserError, match="TF_CONFIG names 2 workers.*MultiWorkerMirroredStrategy.*"
                                        + distributed.ADDRESSES):
        distributed.requested("auto", two)
    one = {"TF_CONFIG": json.dumps({"cluster": {"worker": ["10.0.0.1:2222"]}, "task": {"index": 0}})}
    assert distributed.requested("auto", one) is None and distributed.requested(1, two) is None
    assert distributed.requested("auto", {**two, **JOB})["num_processes"] == 2  # Keras' variables win
    with pytest.raises(UserError, match="TF_CONFIG="):
        distributed.requested("auto", {"TF_CONFIG": "{worker"})


def test_the_native_log_filter_hands_lines_to_its_handlers():
    from gan_tpu import quiet

    seen = []

    def handler(line):
        seen.append(line)
        return line.startswith(b"F1204")

    quiet.on_native_line(handler)
    try:
        handled = quiet.NativeLogFilter._handled
        assert handled(b"F1204 22:24:14.886840 18509 client.h:80] Terminating process")
        assert not handled(b"epoch 1/1 step 1/3") and handled(b"I0000 00:00:1.5 1 port.cc:153] oneDNN")
        assert seen == [b"F1204 22:24:14.886840 18509 client.h:80] Terminating process", b"epoch 1/1 step 1/3"]
    finally:
        quiet._handlers.remove(handler)
