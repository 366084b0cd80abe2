"""ZipStreamWriter: atomic publish, cleanup on any failure, a disk that fills up."""
import errno
import os
import stat
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from gan_tpu.errors import UserError
from gan_tpu.submission.zipwriter import ZipStreamWriter, check_member_name, write_zip


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, 256, dtype=np.float32)
    image = (base[None, :, None] * rng.uniform(0.5, 1.0, size=(1, 1, 3))).astype(np.uint8)
    image = np.broadcast_to(image, (256, 256, 3)).copy()
    return tf.io.encode_jpeg(image, quality=90).numpy()


class FullDisk:
    """A file object wrapper whose disk fills up after `limit` bytes (raises ENOSPC)."""

    def __init__(self, raw, limit: int):
        self.raw, self.limit, self.written = raw, limit, 0

    def write(self, data):
        if self.written + len(data) > self.limit:
            room = max(0, self.limit - self.written)
            self.raw.write(bytes(data)[:room])
            self.written += room
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.written += len(data)
        return self.raw.write(data)

    def __getattr__(self, name):  # seek, tell, flush, ...
        return getattr(self.raw, name)


def _leftovers(directory) -> list[str]:
    return sorted(os.listdir(directory))


@pytest.fixture(scope="module")
def jpegs():
    return [_jpeg(i) for i in range(6)]


def test_writes_members_at_root_stored_and_leaves_no_temp(tmp_path, jpegs):
    out = tmp_path / "images.zip"
    path = write_zip(out, ((f"{i}.jpg", j) for i, j in enumerate(jpegs, 1)))
    assert path == str(out)
    assert _leftovers(tmp_path) == ["images.zip"]
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == [f"{i}.jpg" for i in range(1, 7)]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert zf.read("3.jpg") == jpegs[2]
        assert zf.testzip() is None
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o666 & ~umask


def test_temp_file_lives_in_destination_until_commit(tmp_path, jpegs):
    out = tmp_path / "images.zip"
    with ZipStreamWriter(out) as zw:
        zw.add("1.jpg", jpegs[0])
        assert os.path.dirname(zw.tmp_path) == str(tmp_path)
        assert os.path.exists(zw.tmp_path) and not out.exists()
        zw.commit()
    assert _leftovers(tmp_path) == ["images.zip"]


def test_exception_midway_removes_temp_and_writes_nothing(tmp_path, jpegs):
    out = tmp_path / "images.zip"
    with pytest.raises(RuntimeError, match="model blew up"):
        with ZipStreamWriter(out) as zw:
            zw.add("1.jpg", jpegs[0])
            raise RuntimeError("model blew up")
    assert _leftovers(tmp_path) == []


def test_ctrl_c_removes_temp(tmp_path, jpegs):
    with pytest.raises(KeyboardInterrupt):
        with ZipStreamWriter(tmp_path / "images.zip") as zw:
            zw.add("1.jpg", jpegs[0])
            raise KeyboardInterrupt
    assert _leftovers(tmp_path) == []


def test_no_commit_means_no_zip(tmp_path, jpegs):
    with ZipStreamWriter(tmp_path / "images.zip") as zw:
        zw.add("1.jpg", jpegs[0])
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["first header", "mid-member", "central directory"])
def test_disk_full_leaves_no_zip_and_no_temp(tmp_path, jpegs, where):
    data = sum(len(j) + 30 + len(f"{i}.jpg") for i, j in enumerate(jpegs, 1))  # local headers + data
    limit = {"first header": 10, "mid-member": data // 2, "central directory": data + 10}[where]
    out = tmp_path / "images.zip"
    with pytest.raises(OSError) as err:
        write_zip(out, ((f"{i}.jpg", j) for i, j in enumerate(jpegs, 1)),
                  file_wrapper=lambda raw: FullDisk(raw, limit))
    assert err.value.errno == errno.ENOSPC
    assert _leftovers(tmp_path) == []


def test_disk_full_keeps_an_existing_good_zip(tmp_path, jpegs):
    out = tmp_path / "images.zip"
    write_zip(out, [("1.jpg", jpegs[0])])
    before = out.read_bytes()
    with pytest.raises(OSError):
        write_zip(out, ((f"{i}.jpg", j) for i, j in enumerate(jpegs, 1)),
                  file_wrapper=lambda raw: FullDisk(raw, sum(map(len, jpegs)) // 2))
    assert out.read_bytes() == before
    assert _leftovers(tmp_path) == ["images.zip"]


def test_failed_validation_keeps_old_zip_and_removes_temp(tmp_path, jpegs):
    out = tmp_path / "images.zip"
    write_zip(out, [("1.jpg", jpegs[0])])
    before = out.read_bytes()
    seen = []

    def refuse(path):
        seen.append(path)
        with zipfile.ZipFile(path) as zf:  # the validator sees the complete file
            assert len(zf.namelist()) == 3
        raise UserError(f"{path}: not valid")

    with pytest.raises(UserError, match="not valid"):
        write_zip(out, [(f"{i}.jpg", jpegs[i]) for i in range(1, 4)], validate=refuse)
    assert seen and seen[0] != str(out) and not os.path.exists(seen[0])
    assert out.read_bytes() == before
    assert _leftovers(tmp_path) == ["images.zip"]


def test_successful_write_replaces_old_zip(tmp_path, jpegs):
    out = tmp_path / "images.zip"
    write_zip(out, [("1.jpg", jpegs[0])])
    write_zip(out, [("1.jpg", jpegs[1]), ("2.jpg", jpegs[2])], validate=lambda p: None)
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == ["1.jpg", "2.jpg"]


@pytest.mark.parametrize("name", ["sub/1.jpg", "../x.jpg", "a\\b.jpg", "..", "", "c:x.jpg"])
def test_refuses_path_parts(tmp_path, jpegs, name):
    assert check_member_name(name)
    with pytest.raises(ValueError, match="bad zip member name"):
        write_zip(tmp_path / "images.zip", [(name, jpegs[0])])
    assert _leftovers(tmp_path) == []


def test_refuses_duplicate_names(tmp_path, jpegs):
    with pytest.raises(ValueError, match="duplicate"):
        write_zip(tmp_path / "images.zip", [("1.jpg", jpegs[0]), ("1.jpg", jpegs[1])])
    assert _leftovers(tmp_path) == []


def test_missing_directory_is_a_user_error(tmp_path, jpegs):
    with pytest.raises(UserError, match="does not exist"):
        write_zip(tmp_path / "nope" / "images.zip", [("1.jpg", jpegs[0])])
    (tmp_path / "dir.zip").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        write_zip(tmp_path / "dir.zip", [("1.jpg", jpegs[0])])
