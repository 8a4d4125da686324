"""Stage-1 face-pair data: the random-access source and the grain pipeline over it."""

import collections
import hashlib
import pickle

import numpy as np
import pytest

from vasa_jax.config import default_config
from vasa_jax.data import toyworld
from vasa_jax.data.face_pairs import EXAMPLE_KEYS, HELDOUT_EXAMPLES, TRAIN_EXAMPLES, FacePairSource, face_pair_batches

SIZE = 32  # small renders keep the suite fast; the pipeline does not depend on the size
SECONDS = 2.0


def data_cfg(**overrides):
    cfg = default_config().data
    cfg.clip_seconds = SECONDS
    cfg.update(overrides)
    return cfg


def batches(n, **kwargs):
    kwargs = {"image_size": SIZE, "batch_size": 2, "shard_index": 0, "shard_count": 1, **kwargs}
    it = face_pair_batches(data_cfg(), **kwargs)
    out = [next(it) for _ in range(n)]
    return it, out


def assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def digest(image):
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def test_example_shapes_and_dtypes():
    ex = FacePairSource(SIZE, clip_seconds=SECONDS)[0]
    assert tuple(ex) == EXAMPLE_KEYS
    for key in ("source", "driver", "other"):
        assert ex[key].shape == (SIZE, SIZE, 3) and ex[key].dtype == np.uint8
    for key in ("source_pose", "driver_pose", "other_pose"):
        assert ex[key].shape == (6,) and ex[key].dtype == np.float32
    assert ex["has_pose"].dtype == np.bool_ and bool(ex["has_pose"])
    assert ex["driver_mouth"].shape == (4,) and ex["driver_mouth"].dtype == np.float32 and bool(ex["has_mouth"])
    assert ex["driver_lip_opening"].shape == () and ex["driver_lip_opening"].dtype == np.float32
    assert ex["identity"].dtype == np.int32 and ex["other_identity"].dtype == np.int32


def test_lengths_and_index_range():
    assert len(FacePairSource(SIZE)) == TRAIN_EXAMPLES
    assert len(FacePairSource(SIZE, split="heldout")) == HELDOUT_EXAMPLES
    src = FacePairSource(SIZE, num_examples=5)
    assert len(src) == 5
    with pytest.raises(IndexError):
        src[5]
    with pytest.raises(ValueError, match="split"):
        FacePairSource(SIZE, split="test")
    with pytest.raises(ValueError, match="at least 2"):
        FacePairSource(SIZE, clip_seconds=0.04)


def test_items_are_deterministic_per_seed_split_and_index():
    a = FacePairSource(SIZE, clip_seconds=SECONDS, seed=3)
    b = FacePairSource(SIZE, clip_seconds=SECONDS, seed=3)
    assert_batches_equal([a[7]], [b[7]])
    assert a.plan(7) == b.plan(7)
    assert pickle.loads(pickle.dumps(a)).plan(7) == a.plan(7)  # grain ships the source to worker processes
    assert a.plan(7) != FacePairSource(SIZE, clip_seconds=SECONDS, seed=4).plan(7)
    assert a.plan(7) != a.plan(8)
    assert FacePairSource(SIZE, split="heldout", seed=3).plan(7).identity != a.plan(7).identity


def test_pairs_share_identity_differ_in_pose_and_pixels():
    src = FacePairSource(SIZE, clip_seconds=SECONDS)
    n, pose_differs, pixels_differ = 12, 0, 0
    for i in range(n):
        plan, ex = src.plan(i), src[i]
        assert ex["identity"] == plan.identity and ex["other_identity"] == plan.other_identity
        assert plan.other_identity != plan.identity
        assert plan.other_clip != plan.clip
        assert abs(plan.source_frame - plan.driver_frame) >= src.min_gap
        pose_differs += not np.allclose(ex["source_pose"], ex["driver_pose"])
        pixels_differ += not np.array_equal(ex["source"], ex["driver"])
        assert not np.array_equal(ex["source"], ex["other"])
    assert pose_differs == n and pixels_differ == n


def test_frames_and_poses_match_the_toy_world_clip():
    src = FacePairSource(SIZE, clip_seconds=SECONDS)
    plan, ex = src.plan(3), src[3]
    clip = toyworld.make_clip(plan.clip, identity=plan.identity, seconds=SECONDS, size=SIZE)
    np.testing.assert_array_equal(ex["source"], clip.frames[plan.source_frame])
    np.testing.assert_array_equal(ex["driver"], clip.frames[plan.driver_frame])
    np.testing.assert_array_equal(ex["source_pose"], clip.pose[plan.source_frame])
    np.testing.assert_array_equal(ex["driver_pose"], clip.pose[plan.driver_frame])
    other = toyworld.make_clip(plan.other_clip, identity=plan.other_identity, seconds=SECONDS, size=SIZE)
    np.testing.assert_array_equal(ex["other"], other.frames[plan.other_frame])
    np.testing.assert_array_equal(ex["other_pose"], other.pose[plan.other_frame])


def test_heldout_identities_only_in_heldout_split():
    heldout = FacePairSource(SIZE, split="heldout")
    plans = [heldout.plan(i) for i in range(len(heldout))]
    assert all(toyworld.is_heldout(p.identity) and toyworld.is_heldout(p.other_identity) for p in plans)
    counts = collections.Counter(p.identity for p in plans)
    assert set(counts) == set(toyworld.HELDOUT_IDENTITIES)
    assert set(counts.values()) == {HELDOUT_EXAMPLES // len(toyworld.HELDOUT_IDENTITIES)}

    train = FacePairSource(SIZE, seed=1)
    people = {who for p in map(train.plan, range(20_000)) for who in (p.identity, p.other_identity)}
    assert not any(toyworld.is_heldout(p) for p in people)
    assert len(people) > 30_000  # spread over the 100k training identities, not a few


def test_batches_have_a_batch_axis():
    _, (batch,) = batches(1, batch_size=3)
    ex = FacePairSource(SIZE)[0]
    assert set(batch) == set(EXAMPLE_KEYS)
    for key, value in batch.items():
        assert type(value) is np.ndarray
        assert value.shape == (3, *np.shape(ex[key])) and value.dtype == ex[key].dtype, key


def test_heldout_batches_are_one_ordered_pass():
    src = FacePairSource(SIZE, split="heldout", clip_seconds=SECONDS, num_examples=11)
    it = face_pair_batches(data_cfg(), image_size=SIZE, batch_size=2, split="heldout", shard_index=1,
                           shard_count=2, num_examples=11)
    got = list(it)
    assert len(got) == 2  # shard 1 holds every other batch of 2 from the second: items 2, 3 and 6, 7
    assert_batches_equal(got, [{k: np.stack([src[i][k], src[i + 1][k]]) for k in EXAMPLE_KEYS} for i in (2, 6)])


def test_train_batches_are_shuffled_and_repeat_past_the_source():
    _, got = batches(3, num_examples=4)  # 6 items from a source of 4: a second epoch
    identities = np.concatenate([b["identity"] for b in got])
    src = FacePairSource(SIZE, clip_seconds=SECONDS, num_examples=4)
    assert sorted(identities[:4]) == sorted(src.plan(i).identity for i in range(4))
    assert list(identities[:4]) != [src.plan(i).identity for i in range(4)]  # seed 0 permutes this epoch
    assert set(identities[4:]) <= set(identities[:4])


def test_state_restore_resumes_bit_identically():
    it, _ = batches(3)
    state = it.get_state()
    later = [next(it) for _ in range(2)]
    fresh = face_pair_batches(data_cfg(), image_size=SIZE, batch_size=2, shard_index=0, shard_count=1)
    fresh.set_state(state)
    assert_batches_equal([next(fresh) for _ in range(2)], later)


def test_shards_partition_the_stream():
    _, whole = batches(4)
    _, first = batches(2, shard_index=0, shard_count=2)
    _, second = batches(2, shard_index=1, shard_count=2)
    stream = [digest(b["source"][j]) for b in whole for j in range(2)]
    shard0 = [digest(b["source"][j]) for b in first for j in range(2)]
    shard1 = [digest(b["source"][j]) for b in second for j in range(2)]
    assert not set(shard0) & set(shard1)
    # The shards' batches side by side are the whole stream's batches, row for row.
    assert shard0[:2] + shard1[:2] + shard0[2:] + shard1[2:] == stream


def test_worker_processes_match_in_process_and_resume():
    _, expected = batches(4)
    it, got = batches(2, num_workers=2)  # runs without absl flags parsed (pytest does not parse them)
    state = it.get_state()
    got += [next(it) for _ in range(2)]
    it.close()
    assert_batches_equal(got, expected)
    fresh = face_pair_batches(data_cfg(), image_size=SIZE, batch_size=2, shard_index=0, shard_count=1, num_workers=2)
    fresh.set_state(state)
    resumed = [next(fresh) for _ in range(2)]
    fresh.close()
    assert_batches_equal(resumed, expected[2:])


def test_data_source_checks():
    with pytest.raises(ValueError, match="needs data.shards"):
        face_pair_batches(data_cfg(source="shards"), image_size=SIZE, batch_size=2)
    with pytest.raises(ValueError, match="data.source"):
        face_pair_batches(data_cfg(source="youtube"), image_size=SIZE, batch_size=2)
    with pytest.raises(ValueError, match="fewer than one batch"):
        face_pair_batches(data_cfg(), image_size=SIZE, batch_size=8, split="heldout", shard_index=0, shard_count=1,
                          num_examples=5)


def test_the_mouth_region_holds_the_lips_and_little_else():
    from vasa_jax.data.face_pairs import mouth_box

    src = FacePairSource(SIZE, clip_seconds=SECONDS)
    for index in range(4):
        plan = src.plan(index)
        _, truth = toyworld.perform(plan.clip, identity=plan.identity, seconds=SECONDS, audio=False)
        state = {key: np.asarray(truth[key])[[plan.driver_frame]] for key in toyworld.STATE_KEYS}
        lips = (toyworld.landmarks(toyworld.sample_identity(plan.identity), state)[0, 3:7] + 1) / 2
        x0, y0, x1, y1 = src[index]["driver_mouth"]
        assert ((lips[:, 0] > x0) & (lips[:, 0] < x1)).all() and ((lips[:, 1] > y0) & (lips[:, 1] < y1)).all()
        assert (x1 - x0) * (y1 - y0) < 0.1  # a tenth of the image at most: the mouth, not the face
        # The lip-opening label is the driver frame's true mouth opening.
        assert src[index]["driver_lip_opening"] == np.float32(truth["mouth_open"][plan.driver_frame])
    # Square, centred on the points, the larger extent times MOUTH_BOX_SCALE, clipped to the image.
    np.testing.assert_allclose(mouth_box(np.array([[0.4, 0.6], [0.6, 0.7]])), [0.36, 0.51, 0.64, 0.79], atol=1e-6)
    np.testing.assert_allclose(mouth_box(np.array([[0.9, 0.9], [1.0, 1.0]]))[2:], [1.0, 1.0])
