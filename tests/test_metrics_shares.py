"""gan_tpu.metrics.shares: [eval] past one process. Here the combine step (every process's
share of the feature rows, put back in order, scores as the rows of one process); the
two-process rehearsal (tests/test_multihost.py, slow) runs the whole of it against one process."""
import numpy as np
import pytest

from gan_tpu.metrics import shares
from gan_tpu.metrics.scoring import Reference, StreamingScorer


def _shares(features, processes, devices, batch):
    """What each process holds after painting `features`' rows in batches of `batch` rows
    sharded over `devices` devices, `devices // processes` per process (padding: the last row,
    its place past the end): stacked places [P, m] and rows [P, m, D], as gathered."""
    n = len(features)
    per_device, per_process = batch // devices, batch // processes
    places = [[] for _ in range(processes)]
    for start in range(0, n, batch):
        for p in range(processes):
            places[p] += range(start + p * per_process, start + (p + 1) * per_process)
    places = np.array(places)
    padded = np.concatenate([features, np.repeat(features[-1:], places.max() + 1 - n, 0)])
    assert per_device * devices == batch
    return places, padded[places]


def _score(rows, reference, batch):
    scorer = StreamingScorer(reference, keep_features=False)
    for i in range(0, len(rows), batch):
        scorer.update(rows[i:i + batch])
    return scorer.result(kid_subsets=0)


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    return Reference.from_features(rng.normal(size=(40, 16)).astype(np.float32))


def test_batches_split_over_the_devices():
    assert shares.batch_rows(6, 32, 4) == 8  # 6 photos: one batch, 2 rows of padding
    assert shares.batch_rows(256, 32, 4) == 32
    assert shares.batch_rows(256, 30, 8) == 32
    assert shares.batch_rows(3, 32, 1) == 3


@pytest.mark.parametrize("n, processes, devices, batch", [(6, 2, 4, 8), (10, 2, 4, 4), (21, 4, 8, 8)])
def test_shares_put_back_in_order_score_as_one_process(reference, n, processes, devices, batch):
    rng = np.random.default_rng(n)
    features = rng.normal(size=(n, 16)).astype(np.float32) + 0.3
    places, rows = _shares(features, processes, devices, batch)
    ordered = shares.in_order(places, rows, n)
    np.testing.assert_array_equal(ordered, features)
    one, combined = _score(features, reference, 4), _score(ordered, reference, 4)
    assert {k: combined[k] for k in ("fid", "distance", "mifid")} == {k: one[k] for k in ("fid", "distance", "mifid")}
    # Process 0's share alone scores something else, and is refused as a share lost.
    alone = _score(rows[0][places[0] < n], reference, 4)
    assert abs(alone["fid"] - one["fid"]) > 1e-3 * one["fid"]
    with pytest.raises(RuntimeError, match=f"not each of 0..{n - 1} once"):
        shares.in_order(places[:1], rows[:1], n)


def test_a_share_counted_twice_is_an_error():
    features = np.arange(12, dtype=np.float32).reshape(6, 2)
    places, rows = _shares(features, 2, 2, 4)
    with pytest.raises(RuntimeError, match="not each of 0..5 once"):
        shares.in_order(np.stack([places[0], places[0]]), rows, 6)


def test_one_process_gathers_and_agrees_with_itself():
    places = np.array([2, 0, 1, 5])  # 5: padding
    rows = np.array([[2.0], [0.0], [1.0], [9.0]], np.float32)
    np.testing.assert_array_equal(shares.gathered_rows(places, rows, 3), [[0.0], [1.0], [2.0]])
    scores = {"fid": 1.0 / 3.0, "distance": None, "mifid": 12.5}
    assert shares.agreed(scores) == scores
