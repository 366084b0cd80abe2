"""Checkpoints: an unreadable newest checkpoint falls back to the newest readable one."""
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import checkpoints
from gan_tpu.errors import UserError

DATA, INDEX = ".data-00000-of-00001", ".index"


def _variables():
    return {"w": tf.Variable(np.zeros(256, np.float32)), "step": tf.Variable(np.int64(0))}


def _saved(directory, steps=(8, 12, 16)):
    """A folder holding ckpt-N for each step, ckpt-N's `w` all N."""
    variables = _variables()
    manager = checkpoints.CheckpointManager(variables, str(directory))
    for step in steps:
        variables["w"].assign(np.full(256, step, np.float32))
        variables["step"].assign(step)
        manager.save(step)
    return str(directory)


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


DAMAGE = {
    "truncated data": lambda prefix: _truncate(prefix + DATA),
    "deleted data": lambda prefix: os.remove(prefix + DATA),
    "truncated index": lambda prefix: _truncate(prefix + INDEX),
    "deleted index": lambda prefix: os.remove(prefix + INDEX),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_an_unreadable_newest_checkpoint_falls_back_with_one_warning(tmp_path, caplog, damage):
    folder = _saved(tmp_path)
    DAMAGE[damage](os.path.join(folder, "ckpt-16"))
    variables = _variables()
    manager = checkpoints.CheckpointManager(variables, folder)
    with caplog.at_level(logging.WARNING, logger="gan_tpu"):
        restored = manager.restore(None, "'toy'")
    assert restored == os.path.join(folder, "ckpt-12")
    np.testing.assert_array_equal(variables["w"].numpy(), np.full(256, 12, np.float32))
    assert int(variables["step"].numpy()) == 12
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ckpt-16" in warnings[0] and "\n" not in warnings[0]
    # the next save forgets the bad one: it no longer counts among the kept checkpoints
    manager.save(13)
    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-8", "ckpt-12", "ckpt-13"]
    assert tf.train.latest_checkpoint(folder).endswith("ckpt-13")


def test_no_readable_checkpoint_is_one_line_naming_the_folder_and_changes_nothing(tmp_path, caplog):
    folder = _saved(tmp_path)
    DAMAGE["truncated data"](os.path.join(folder, "ckpt-16"))
    DAMAGE["deleted index"](os.path.join(folder, "ckpt-12"))
    DAMAGE["truncated index"](os.path.join(folder, "ckpt-8"))
    variables = _variables()
    variables["w"].assign(np.full(256, -1, np.float32))
    with caplog.at_level(logging.WARNING, logger="gan_tpu"), \
            pytest.raises(UserError, match=r"^.*: no readable checkpoint \(all 3 have") as err:
        checkpoints.CheckpointManager(variables, folder).restore(None, "'toy'")
    assert str(err.value).startswith(folder) and "\n" not in str(err.value)
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 3
    np.testing.assert_array_equal(variables["w"].numpy(), np.full(256, -1, np.float32))


def test_an_empty_folder_restores_nothing(tmp_path):
    assert checkpoints.CheckpointManager(_variables(), str(tmp_path / "none")).restore(None, "'toy'") is None


def test_a_lost_state_file_still_finds_the_checkpoints(tmp_path):
    folder = _saved(tmp_path)
    os.remove(os.path.join(folder, checkpoints.STATE_FILE))
    variables = _variables()
    assert checkpoints.CheckpointManager(variables, folder).restore(None, "'toy'").endswith("ckpt-16")
    assert int(variables["step"].numpy()) == 16


def test_an_explicit_unreadable_checkpoint_is_refused_not_replaced(tmp_path):
    folder = _saved(tmp_path)
    DAMAGE["truncated data"](os.path.join(folder, "ckpt-12"))
    variables = _variables()
    with pytest.raises(checkpoints.UnreadableCheckpoint, match=r"ckpt-12: unreadable checkpoint \(Read less"):
        checkpoints.CheckpointManager(variables, folder).restore(os.path.join(folder, "ckpt-12"), "'toy'")
    assert int(variables["step"].numpy()) == 0  # nothing half-assigned


def test_a_checkpoint_without_the_models_step_reads_it_from_its_stand_in(tmp_path):
    """Checkpoints written before models counted their own steps hold the first player's
    optimizer step count only: that stands in for `step`; any other gap is still refused."""
    old = {"w": tf.Variable(np.full(256, 3, np.float32)), "optimizers/g/0": tf.Variable(np.int64(7))}
    prefix = checkpoints.write(str(tmp_path / "ckpt-7"), old)
    variables = {**_variables(), "optimizers/g/0": tf.Variable(np.int64(0))}
    checkpoints.read(prefix, variables, "'toy'", {"step": "optimizers/g/0"})
    assert int(variables["step"].numpy()) == 7 and int(variables["optimizers/g/0"].numpy()) == 7
    np.testing.assert_array_equal(variables["w"].numpy(), np.full(256, 3, np.float32))
    with pytest.raises(UserError, match="missing step"):
        checkpoints.read(prefix, variables, "'toy'")


def test_an_every_n_save_on_an_epochs_last_step_is_rewritten_with_the_epoch_done(tmp_path):
    """checkpoint_every dividing the epoch: the save at step 3 (epoch 0 not yet counted) is
    written again at the epoch's end with epoch 1, so a resume does not redo the epoch."""
    from gan_tpu.callbacks import Checkpointer

    step, epoch = tf.Variable(np.int64(0)), tf.Variable(np.int64(0))
    variables = {"step": step, "epoch": epoch}
    manager = checkpoints.CheckpointManager(variables, str(tmp_path))
    saver = Checkpointer(manager, epoch, step, every_steps=3)
    for epoch_index in range(2):
        for _ in range(3):
            step.assign_add(1)
            saver.on_train_batch_end(0)
        saver.on_epoch_end(epoch_index)
    saver.on_train_end()

    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-3", "ckpt-6"]
    for name, want_epoch in (("ckpt-3", 1), ("ckpt-6", 2)):
        restored = {"step": tf.Variable(np.int64(-1)), "epoch": tf.Variable(np.int64(-1))}
        checkpoints.read(str(tmp_path / name), restored, "'toy'")
        assert int(restored["epoch"].numpy()) == want_epoch
