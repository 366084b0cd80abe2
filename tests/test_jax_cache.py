"""gan_tpu.jax_cache: JAX's persistent compilation cache, set up by `gan-tpu` on the JAX backend."""
import json
import os
import subprocess
import sys
import zipfile

import pytest

from gan_tpu import jax_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_configure_keeps_every_program_in_gan_tpus_folder(tmp_path):
    env = {"GAN_TPU_CACHE": str(tmp_path)}
    assert jax_cache.configure(env) == str(tmp_path / "jax")
    assert env["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "jax")
    assert env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"
    assert env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] == "0"


def test_configure_honours_its_folder_off_and_jaxs_own_setting(tmp_path):
    env = {"GAN_TPU_JAX_CACHE": str(tmp_path / "mine")}
    assert jax_cache.configure(env) == str(tmp_path / "mine")
    for off in ("off", "0", "OFF"):
        env = {"GAN_TPU_JAX_CACHE": off}
        assert jax_cache.configure(env) is None and env == {"GAN_TPU_JAX_CACHE": off}
    env = {"JAX_COMPILATION_CACHE_DIR": "/theirs", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "2"}
    assert jax_cache.configure(env) == "/theirs"
    assert env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "2"


CHOOSE = """
import json, os, sys
from gan_tpu import keras_backend
keras_backend.choose(["generate"])
print(json.dumps({k: os.environ.get(k) for k in ("KERAS_BACKEND", "JAX_COMPILATION_CACHE_DIR")}))
"""


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_the_cli_backend_choice_turns_the_cache_on_for_jax_only(tmp_path, backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "GAN_TPU_JAX_CACHE": str(tmp_path), "PYTHONPATH": ROOT}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    run = subprocess.run([sys.executable, "-c", CHOOSE], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout) == {"KERAS_BACKEND": backend,
                                      "JAX_COMPILATION_CACHE_DIR": str(tmp_path) if backend == "jax" else None}


# A fresh process as `gan-tpu generate` runs on JAX: the backend chosen (and the cache set up)
# before Keras is imported, a generator built (its initializers compile), a zip written; then
# JAX's in-memory caches cleared and the same again, as a second process would.
GENERATE = """
import json, os, sys
from gan_tpu import keras_backend
keras_backend.choose(["generate"])
import jax
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
import keras, numpy as np, tensorflow as tf
from gan_tpu import translator
from gan_tpu.models.networks import unet_generator
from gan_tpu.submission.generate import write_submission
photos = np.random.default_rng(0).integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
counts = []
for name in ("first.zip", "second.zip"):
    jax.clear_caches()
    del events[:]
    keras.utils.set_random_seed(0)
    gen = unet_generator(32, ngf=4, upsample="resize")
    write_submission(translator.at_size(gen), tf.data.Dataset.from_tensor_slices(photos),
                     os.path.join(sys.argv[1], name), allow_any_count=True, progress=False, batch_size=2)
    counts.append({"requests": events.count("/jax/compilation_cache/compile_requests_use_cache"),
                   "hits": events.count("/jax/compilation_cache/cache_hits")})
print(json.dumps(counts))
"""


def test_jax_programs_are_kept_on_disk_and_loaded_again_with_the_same_zip(tmp_path):
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT,
           "GAN_TPU_JAX_CACHE": str(tmp_path / "cache")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    run = subprocess.run([sys.executable, "-c", GENERATE, str(tmp_path)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    first, second = json.loads(run.stdout.strip().splitlines()[-1])
    assert first["requests"] > 10 and first["hits"] == 0  # the initializers' programs and the inference
    assert second == {"requests": first["requests"], "hits": first["requests"]}  # none compiled again
    assert len(os.listdir(tmp_path / "cache")) >= first["requests"]
    members = []
    for name in ("first.zip", "second.zip"):
        with zipfile.ZipFile(tmp_path / name) as zf:
            members.append([(n, zf.read(n)) for n in zf.namelist()])
    assert len(members[0]) == 3 and members[0] == members[1]
