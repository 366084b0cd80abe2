"""Test session setup: two logical CPU devices, so MirroredStrategy has two real replicas."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
try:
    tf.config.set_logical_device_configuration(
        _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
except RuntimeError:  # already initialized by an earlier import
    pass


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _each_test_is_a_run():
    """Budgets count from the start of each test, not of the whole (long) test process."""
    from gan_tpu.budget import mark_run_start

    mark_run_start()
