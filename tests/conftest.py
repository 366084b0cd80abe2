"""Test session setup: two logical CPU devices, so MirroredStrategy has two real replicas."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The tests' XLA programs are tiny and run a few steps each, so compiling them is most of their
# cost: LLVM at level 0 instead of 3 compiles U-GAT-IT's step in 21 CPU-s instead of 35 (its
# 49 more steps: 11 s instead of 4). The HLO, what the tests check, is the same.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
try:
    tf.config.set_logical_device_configuration(
        _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
except RuntimeError:  # already initialized by an earlier import
    pass


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _cache_in_a_temporary_folder(tmp_path_factory):
    """`score`'s reference cache and the extractors' downloads go to a temporary folder, not
    ~/.cache/gan_tpu (tests that test the cache set GAN_TPU_CACHE themselves)."""
    os.environ["GAN_TPU_CACHE"] = str(tmp_path_factory.mktemp("gan_tpu_cache"))


@pytest.fixture(autouse=True)
def _each_test_is_a_run():
    """Budgets count from the start of each test, not of the whole (long) test process."""
    from gan_tpu.budget import mark_run_start

    mark_run_start()


@pytest.fixture(scope="module")
def zip_validated_once():
    """Within a file, zip bytes validated once are not decoded again: `validate_zip`'s report is
    a function of the file's bytes and its bounds, and its 7,000 JPEG decodes cost 2.4 CPU-s
    each time `submit` or `make kernel` validates another copy of the same valid zip."""
    import dataclasses
    import hashlib

    from gan_tpu.submission import validate

    real, reports = validate.validate_zip, {}

    def validate_zip(path, **bounds):
        if not os.path.isfile(path):
            return real(path, **bounds)  # its one-line error
        with open(path, "rb") as fh:
            key = (hashlib.blake2b(fh.read(), digest_size=16).digest(), tuple(sorted(bounds.items())))
        if key not in reports:
            reports[key] = real(path, **bounds)
        return dataclasses.replace(reports[key], path=os.fspath(path), problems=list(reports[key].problems))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validate, "validate_zip", validate_zip)
        yield reports

# `make test` hands whole files to its two workers as they free up (--dist loadfile: a file's
# module fixtures, its XLA compiles and CLI runs, are made once), in this order: the files of
# a minute or more of CPU first (those of 2-3 minutes at the front), so that no long one is
# left to run alone at the end; the others follow in their usual order.
LONGEST_FIRST = ("test_ugatit.py", "test_biggan.py", "test_noise_models.py", "test_jax_backend.py", "test_mixed_precision.py",
                 "test_cyclegan_options.py", "test_bayesian_cyclegan.py", "test_run.py", "test_cut.py",
                 "test_munit.py", "test_replicas.py", "test_stargan.py", "test_unit.py", "test_drit.py", "test_train.py", "test_plan.py",
                 "test_upsample.py", "test_cyclegan.py")


def pytest_addoption(parser):
    parser.addoption("--shuffle", type=int, default=None, metavar="SEED",
                     help="run each file's tests in an order shuffled with SEED (files stay whole)")


def pytest_collection_modifyitems(config, items):
    import random

    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order stays
    seed = config.getoption("--shuffle")
    if seed is not None:
        files = {}
        for item in items:
            files.setdefault(item.path, []).append(item)
        for tests in files.values():
            random.Random(f"{seed}:{tests[0].path.name}").shuffle(tests)
        items[:] = [item for tests in files.values() for item in tests]
