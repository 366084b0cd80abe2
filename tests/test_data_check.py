"""The data check reads every image once and reports every bad one in one run, in the user's
terms (issue 26's probe: an empty file, a grayscale JPEG, a PNG renamed .jpg, a 300×200 image)."""
import os

import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import cli, data
from gan_tpu.errors import UserError
from tests.helpers import jpeg, smooth_images, write_records


def _bad_folder(folder):
    """monet_jpg/ with one good image and one of each kind of bad file; -> expected lines."""
    os.makedirs(folder)
    good = smooth_images(1)[0]
    files = {
        "a_good.jpg": jpeg(good),
        "b_empty.jpg": b"",
        "c_gray.jpg": tf.io.encode_jpeg(tf.image.rgb_to_grayscale(good)).numpy(),
        "d_png.jpg": tf.io.encode_png(good).numpy(),
        "e_wide.jpg": jpeg(np.zeros((200, 300, 3), np.uint8)),
        "f_cut.jpg": jpeg(good)[: len(jpeg(good)) // 3],
        "g_small_gray.jpg": tf.io.encode_jpeg(np.zeros((64, 64, 1), np.uint8)).numpy(),
    }
    for name, payload in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(payload)
    return [
        "b_empty.jpg: empty file",
        "c_gray.jpg: grayscale, expected RGB",
        "d_png.jpg: not a JPEG (PNG data)",
        "e_wide.jpg: 300×200 pixels, expected 256×256",
        "f_cut.jpg: truncated or corrupt JPEG data (the header is fine, the image does not decode)",
        "g_small_gray.jpg: 64×64 pixels, expected 256×256; grayscale, expected RGB",
    ]


def _message(path, domain=None):
    with pytest.raises(UserError) as err:
        data.verify_source(data.resolve(str(path), domain))
    return str(err.value)


def test_every_bad_file_of_a_folder_in_one_run(tmp_path):
    expected = _bad_folder(str(tmp_path / "monet_jpg"))
    lines = _message(tmp_path, "monet").splitlines()
    assert lines[0] == "6 bad images or files (fix or remove them, then run again):"
    assert [line.strip().split(os.sep)[-1] for line in lines[1:]] == expected
    assert all(line.startswith(f"  {tmp_path}") for line in lines[1:])


def test_records_report_every_bad_record_and_the_truncation(tmp_path):
    good = jpeg(smooth_images(1)[0])
    png = tf.io.encode_png(smooth_images(1)[0]).numpy()
    payloads = [data.example_bytes(n, b, "monet") for n, b in
                (("r0", good), ("r1", png), ("r2", good[: len(good) // 3]), ("r3", good), ("r4", good))]
    path = write_records(str(tmp_path / "monet00-5.tfrec"), payloads)
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) - 500)
    other = write_records(str(tmp_path / "monet01-1.tfrec"), [data.example_bytes("s0", b"", "monet")])
    lines = _message(str(tmp_path / "*.tfrec")).splitlines()
    assert lines[1:] == [
        f"  {path}: record 1 (r1): not a JPEG (PNG data)",
        f"  {path}: record 2: truncated or corrupt JPEG data (the header is fine, the image does not decode)",
        f"  {path}: truncated record 4 (after 4 good records)",
        f"  {other}: record 0 (s0): no image (the Example's 'image' feature is missing or empty)",
    ]


def test_more_than_twenty_bad_files_are_counted(tmp_path):
    for i in range(25):
        (tmp_path / f"{i:02d}.jpg").write_bytes(b"")
    lines = _message(tmp_path).splitlines()
    assert lines[0].startswith("25 bad images") and len(lines) == 22
    assert lines[20].endswith("19.jpg: empty file") and lines[21] == "  … and 5 more"


def test_good_data_passes_and_is_counted(tmp_path):
    folder = tmp_path / "photo_jpg"
    folder.mkdir()
    for i, image in enumerate(smooth_images(3)):
        (folder / f"{i}.jpg").write_bytes(jpeg(image))
    assert data.verify_source(data.resolve(str(tmp_path), "photo")) == 3


def test_train_lists_every_bad_file_before_building_anything(tmp_path, capsys):
    root = tmp_path / "data"
    _bad_folder(str(root / "monet_jpg"))
    (root / "photo_jpg").mkdir()
    for i, image in enumerate(smooth_images(2)):
        (root / "photo_jpg" / f"{i}.jpg").write_bytes(jpeg(image))
    code = cli.main(["train", "demo", "--set", f'data.monet="{root}"', "--set", f'data.photo="{root}"',
                     "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "gan-tpu: error: 6 bad images or files" in err and "Traceback" not in err
    assert "d_png.jpg: not a JPEG (PNG data)" in err
