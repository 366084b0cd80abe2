"""Input pipeline images/s: the stateless block shuffle (`data.shuffled_blocks`) against
tf.data's buffered `Dataset.shuffle` it replaced, in the same `data.unpaired_dataset`.

The old way is put back by swapping `data.shuffled_blocks` for
`ds.shuffle(block, seed, reshuffle_each_iteration=True).repeat()`; everything else (reading,
decode, augment, batch, prefetch) is the same code. Real JPEGs in Kaggle's record layout
(bench_input.write_dataset); runs alternate between the ways (the order flips every repeat),
medians. Windows should span several passes over the data: the block shuffle reads the next
block ahead, so a short window charges it reading the old one does after the window ends.

`--stage` times the shuffle stage alone: the photos' encoded bytes, read and shuffled, nothing
decoded (elements/s), which isolates the per-element cost of the two shuffles.

    PYTHONPATH=. python bench/bench_shuffle.py [--images 16000] [--repeats 5] [--batch 8] [--block 2048] [--stage]
"""
from __future__ import annotations

import argparse
import statistics
import sys

import bench_input  # noqa: E402 (puts the repository on the path)
from gan_tpu import data  # noqa: E402


def buffered(ds, block, seed):
    """The shuffle before the change: tf.data's, which mixes in TensorFlow's global seed."""
    import tensorflow as tf

    return ds.shuffle(block, seed=tf.cast(seed, tf.int64), reshuffle_each_iteration=True).repeat()


def make(way: str, root: str, batch: int, block: int):
    data.shuffled_blocks = WAYS[way]
    monet, photo = data.resolve(root, "monet"), data.resolve(root, "photo")
    return data.unpaired_dataset(monet, photo, global_batch=batch, image_size=256, seed=0,
                                 shuffle_buffer=block).prefetch(data.AUTOTUNE)


WAYS = {"stateless blocks": data.shuffled_blocks, "tf.data shuffle": buffered}


def stage(way: str, root: str, block: int):
    """The photos' encoded bytes through one way's shuffle, endless; nothing decoded."""
    photo = data.resolve(root, "photo")
    encoded = data._encoded(photo).map(lambda _, jpeg: jpeg)
    return WAYS[way](encoded, min(block, photo.count), 0).batch(1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=16000, help="images per run, both domains (default 16000)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--block", type=int, default=2048, help="data.shuffle_buffer (default 2048)")
    p.add_argument("--stage", action="store_true", help="the shuffle stage alone (encoded bytes/s)")
    args = p.parse_args(argv)
    if bench_input.realdata_files() is None:
        print("bench_shuffle: skipped: no real images (see ../shared/realdata/README.md)")
        return 3
    root = bench_input.write_dataset()
    def rate(way, images):  # images_per_second counts pairs x 2; a stage element is one image
        if args.stage:
            return bench_input.images_per_second(stage(way, root, args.block), 1, 2 * images) / 2
        return bench_input.images_per_second(make(way, root, args.batch, args.block), args.batch, images)

    for way in WAYS:  # warm-up: traces, file cache
        rate(way, 256)
    runs = {way: [] for way in WAYS}
    for r in range(args.repeats):
        for way in (list(WAYS) if r % 2 == 0 else list(WAYS)[::-1]):
            runs[way].append(rate(way, args.images))
            print(f"  run {r + 1}: {way:17s} {runs[way][-1]:8.1f} images/s", flush=True)
    what = "encoded images (shuffle stage alone)" if args.stage else f"images per run, batch {args.batch}"
    print(f"\n{args.images} {what}, blocks/buffer of {args.block}, medians of {args.repeats}")
    for way, values in runs.items():
        print(f"| {way} | {statistics.median(values):.1f} | {', '.join(f'{v:.0f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
