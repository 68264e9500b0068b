"""The input pipeline: standardised batches equal the records, errors name the problem."""

import dataclasses
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_export_config
from tf_landslide import data, export, records
from tf_landslide.config import InputConfig


@pytest.fixture(scope="module")
def exported(tiny_cube, tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    manifest = export.export(tiny_export_config(tiny_cube, root, shard_mb=0.05))
    return manifest, root / manifest["config"]["name"]


def _raw_split(manifest, folder, split):
    images, labels = [], []
    for shard in manifest["splits"][split]["shards"]:
        for raw in records.read_tfrecord(folder / shard["file"]):
            parsed = tf.io.parse_single_example(raw, records.feature_spec())
            shape = parsed[records.SHAPE].numpy()
            images.append(np.frombuffer(parsed[records.IMAGE].numpy(), np.float16).reshape(shape).astype(np.float32))
            labels.append(np.frombuffer(parsed[records.LABEL].numpy(), np.uint8).reshape(shape[:2]))
    return np.stack(images), np.stack(labels)


def test_evaluation_batches_are_the_standardised_records_in_manifest_order(exported):
    manifest, folder = exported
    dataset = data.make_dataset(manifest, folder, "val", InputConfig(batch_size=3), training=False)
    images = np.concatenate([image.numpy() for image, _ in dataset])
    labels = np.concatenate([label.numpy() for _, label in dataset])
    raw, raw_labels = _raw_split(manifest, folder, "val")
    mean, std = data.normalisation(manifest)
    expected = np.nan_to_num((raw - mean) / std, nan=0.0)
    assert np.isnan(raw).any(), "the tiny cube has missing pixels: NaN handling must be exercised"
    np.testing.assert_allclose(images, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(labels[..., 0], raw_labels)
    assert images.dtype == np.float32 and labels.shape[-1] == 1


def test_training_shuffles_and_deterministic_mode_repeats(exported):
    manifest, folder = exported
    cfg = InputConfig(batch_size=4, deterministic=True, seed=42)

    def label_sums(dataset):
        return [float(s) for _, label in dataset for s in tf.reduce_sum(label, [1, 2, 3]).numpy()]

    first = label_sums(data.make_dataset(manifest, folder, "train", cfg, training=True))
    again = label_sums(data.make_dataset(manifest, folder, "train", cfg, training=True))
    ordered = label_sums(data.make_dataset(manifest, folder, "train", cfg, training=False))
    assert first == again
    assert sorted(first) == sorted(ordered) and first != ordered


def test_augmentation_moves_image_and_label_together():
    label = tf.cast(tf.random.stateless_uniform([6, 8, 8, 1], seed=[1, 2]) > 0.7, tf.float32)
    image = tf.concat([label * 3.0, tf.random.stateless_normal([6, 8, 8, 2], seed=[3, 4])], axis=-1)
    augmented_image, augmented_label = data.augment_batch(image, label, tf.constant([5, 6], tf.int64))
    np.testing.assert_array_equal(augmented_image[..., :1].numpy(), augmented_label.numpy() * 3.0)
    assert not np.array_equal(augmented_label.numpy(), label.numpy())
    # Each output chip is one of the 8 flips/rotations of its input.
    for k in range(6):
        variants = [
            np.rot90(m, r) for m in (label[k, ..., 0].numpy(), label[k, ..., 0].numpy()[:, ::-1]) for r in range(4)
        ]
        assert any(np.array_equal(augmented_label[k, ..., 0].numpy(), v) for v in variants)


def test_flags_that_disagree_with_the_export_name_both_sides(exported):
    manifest, _ = exported
    with pytest.raises(data.DataError, match=r"expects channels \['vv_before'\] but the records hold"):
        data.check_manifest(manifest, manifest["config"]["name"], ("vv_before",), 32)
    with pytest.raises(data.DataError, match="--chip_size=128 but the records hold 32-pixel chips"):
        data.check_manifest(manifest, manifest["config"]["name"], tuple(manifest["channels"]), 128)
    with pytest.raises(data.DataError, match="--config=vv_t1 but the manifest's configuration is 'vv_vh_dem_t2'"):
        data.check_manifest(manifest, "vv_t1", tuple(manifest["channels"]), 32)


def test_truncated_or_corrupt_shard_is_an_error_naming_the_file(exported, tmp_path):
    manifest, folder = exported
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    shard = copy / manifest["splits"]["train"]["shards"][0]["file"]
    payload = bytearray(shard.read_bytes())
    shard.write_bytes(bytes(payload[:-100]))
    with pytest.raises(data.DataError, match=f"{shard}.*truncated"):
        data.make_dataset(manifest, copy, "train", InputConfig(), training=True)
    payload[200] ^= 0xFF  # same size, one flipped byte
    shard.write_bytes(bytes(payload))
    with pytest.raises(data.DataError, match=f"{shard}.*corrupt"):
        data.make_dataset(manifest, copy, "train", InputConfig(), training=True)


def test_missing_export_says_how_to_make_it(tmp_path):
    with pytest.raises(data.DataError, match="python -m export --flagfile=configs/vv_t1.flags"):
        data.load_manifest(tmp_path, "vv_t1")


def test_caching_does_not_change_the_batches(exported):
    manifest, folder = exported
    cached = data.make_dataset(manifest, folder, "test", InputConfig(batch_size=2), training=False)
    uncached = data.make_dataset(
        manifest, folder, "test", dataclasses.replace(InputConfig(batch_size=2), cache_mb=0), training=False
    )
    for (a, _), (b, _) in zip(cached, uncached, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
