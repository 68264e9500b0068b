"""Manifest + shards -> tf.data batches of standardised chips, for training and evaluation.

Order of operations: shard file names -> interleaved TFRecord reads -> (cache) -> shuffle ->
batch -> one vectorised parse + standardise per batch -> (augment) -> prefetch. Parsing after
batching decodes a whole batch in one op, which is several times faster than per-record maps.
"""

from __future__ import annotations

import os

import numpy as np

from tf_landslide import records, storage
from tf_landslide.config import InputConfig

MANIFEST_NAME = "manifest.json"


class DataError(ValueError):
    """Records missing, damaged, or not what the run asks for."""


def load_manifest(records_dir: str | os.PathLike, config: str) -> tuple[dict, str]:
    """The manifest of ``<records_dir>/<config>`` and that folder (a path or URL string)."""
    folder = storage.join(records_dir, config)
    path = storage.join(folder, MANIFEST_NAME)
    if not storage.exists(path):
        raise DataError(
            f"no export at {folder} ({MANIFEST_NAME} missing): run "
            f"`python -m export --flagfile=configs/{config}.flags --records_dir={records_dir}` first"
        )
    return storage.read_json(path), folder


def check_manifest(manifest: dict, config: str, channels: tuple[str, ...], chip_size: int) -> None:
    """Raise DataError naming both sides when the run's flags disagree with the export."""
    problems = []
    if manifest["config"]["name"] != config:
        problems.append(f"--config={config} but the manifest's configuration is {manifest['config']['name']!r}")
    if tuple(manifest["channels"]) != tuple(channels):
        problems.append(f"the run expects channels {list(channels)} but the records hold {manifest['channels']}")
    if manifest["chip_size"] != chip_size:
        problems.append(f"--chip_size={chip_size} but the records hold {manifest['chip_size']}-pixel chips")
    if problems:
        raise DataError("; ".join(problems) + ". Re-export with these flags (add --overwrite) or fix the flags")


def check_export_settings(manifest: dict, expected: dict) -> None:
    """Raise DataError listing every export setting where the run's flags and the records differ."""
    recorded = manifest.get("settings", {})
    differences = [
        f"{key}: flags {value!r}, records {recorded.get(key)!r}"
        for key, value in expected.items()
        if recorded.get(key) != value
    ]
    if differences:
        raise DataError(
            f"the records in {manifest['config']['name']} were exported with other settings than the flags ask for ("
            + "; ".join(differences)
            + "). Re-export with these flags (python -m export ... --overwrite) or fix the flags"
        )


def split_files(manifest: dict, folder: str | os.PathLike, split: str, verify: bool) -> list[str]:
    """Shard paths of ``split``; checks sizes (and every record's CRC when ``verify``; a remote
    shard is downloaded to a temporary file for that, one at a time)."""
    if split not in manifest["splits"]:
        raise DataError(f"split {split!r} is not in {storage.join(folder, MANIFEST_NAME)}")
    files = []
    for shard in manifest["splits"][split]["shards"]:
        path = storage.join(folder, shard["file"])
        if not storage.exists(path):
            raise DataError(f"shard {path} listed in the manifest is missing: re-run the export")
        size = storage.size(path)
        if size != shard["bytes"]:
            raise DataError(
                f"shard {path} is {size} bytes but the manifest says {shard['bytes']}: "
                "it is truncated or was changed; re-run the export with --overwrite"
            )
        if verify:
            local = path
            try:
                with storage.local_input(path) as local:
                    count = records.count_records(local, manifest["records"]["compression"])
            except records.CorruptShardError as error:
                raise DataError(str(error).replace(str(local), str(path))) from error
            if count != shard["records"]:
                raise DataError(f"shard {path} holds {count} records, the manifest says {shard['records']}")
        files.append(path)
    if not files:
        raise DataError(f"the {split} split of {folder} holds no chips: export more of the cube or change --split")
    return files


def normalisation(manifest: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (float32) in channel order; a zero std becomes 1."""
    stats = manifest["normalisation"]
    mean = np.array([stats["mean"][c] for c in manifest["channels"]], np.float32)
    std = np.array([stats["std"][c] for c in manifest["channels"]], np.float32)
    return mean, np.where(std > 0, std, 1.0).astype(np.float32)


def standardise(image, mean, std):
    """(x - mean) / std per channel, then missing (NaN) -> 0, as the paper does."""
    import tensorflow as tf

    scaled = (image - mean) / std
    return tf.where(tf.math.is_nan(scaled), tf.zeros_like(scaled), scaled)


def augment_batch(image, label, seed):
    """Random flips and 90-degree rotations, the same for a chip and its label.

    ``seed`` is a stateless [2] seed: the same seed gives the same augmentation.
    """
    import tensorflow as tf

    joint = tf.concat([image, label], axis=-1)
    n = tf.shape(joint)[0]
    draws = tf.random.stateless_uniform([n, 3], seed=seed, maxval=4, dtype=tf.int32)
    flip = tf.reshape(draws[:, 0] % 2 == 1, [-1, 1, 1, 1])
    joint = tf.where(flip, tf.reverse(joint, axis=[2]), joint)
    rotations = tf.stack([tf.image.rot90(joint, k) for k in range(4)])  # square chips
    joint = tf.gather(tf.transpose(rotations, [1, 0, 2, 3, 4]), draws[:, 1], batch_dims=1)
    return joint[..., :-1], joint[..., -1:]


def _read_records(files: list[str], compression: str, cfg: InputConfig, training: bool):
    """The serialized records of the shards ``files``, read in shuffled file order when training."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if training and len(files) > 1:
        dataset = dataset.shuffle(len(files), seed=cfg.seed, reshuffle_each_iteration=True)
    # Parallel reads pay off with several shards (and remote storage); with one shard the
    # interleave's thread hand-offs only cost time.
    parallel = {"num_parallel_calls": tf.data.AUTOTUNE, "deterministic": cfg.deterministic or not training}
    return dataset.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression, buffer_size=8 << 20),
        cycle_length=min(len(files), 8),
        **(parallel if len(files) > 1 else {}),
    )


def _cache_and_shuffle(dataset, shards: list[dict], cfg: InputConfig, training: bool):
    """The records cached in memory when the split's ``shards`` fit in ``cfg.cache_mb``, then
    shuffled when training."""
    split_mb = sum(s["bytes"] for s in shards) / 1e6
    if split_mb <= cfg.cache_mb:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(cfg.shuffle_buffer, seed=cfg.seed, reshuffle_each_iteration=True)
    return dataset


def _check_replicas(split: str, chips: int, cfg: InputConfig, training: bool, replicas: int) -> None:
    """Raise DataError when full batches cannot give each of several replicas a chip."""
    if replicas > 1 and cfg.batch_size < replicas:
        raise DataError(f"--batch_size={cfg.batch_size} is smaller than the {replicas} replicas: give each one a chip")
    if replicas > 1 and training and chips < cfg.batch_size:
        raise DataError(f"the {split} split holds {chips} chips, fewer than --batch_size={cfg.batch_size}")


def _pad_with_weights(dataset, chips: int, batch_size: int):
    """(record, 1.0) for each of the ``chips`` records, then repeated records of weight 0.0 up
    to a whole number of batches."""
    padding = (-chips) % batch_size
    weighted = dataset.map(lambda record: (record, 1.0))
    return weighted.concatenate(dataset.repeat().take(padding).map(lambda record: (record, 0.0)))


def _batch_parser(size: int, n_channels: int, dtype: str, mean: np.ndarray, std: np.ndarray, weighted: bool):
    """The map of a batch of serialized records to (standardised image, label), and a per-pixel
    weight when the batches are ``weighted`` (serialized, weight) pairs."""
    import tensorflow as tf

    # The arithmetic runs as one XLA kernel: unfused, the cast, scaling and NaN handling each
    # make a pass over the batch and the pipeline runs markedly slower.
    @tf.function(jit_compile=True)
    def to_model_inputs(image, label):
        return standardise(tf.cast(image, tf.float32), mean, std), tf.cast(label, tf.float32)

    def parse(serialized, weight=None):
        image, label = to_model_inputs(*records.decode_raw_batch(serialized, size, size, n_channels, dtype))
        if weight is None:
            return image, label
        # One weight per pixel, the shape of the per-pixel loss: Keras broadcasts no further.
        return image, label, tf.broadcast_to(tf.reshape(weight, [-1, 1, 1]), tf.shape(label)[:3])

    return (lambda serialized, weight: parse(serialized, weight)) if weighted else parse


def _augment(dataset, seed: int):
    """Each batch flipped and rotated by ``augment_batch`` with its own stateless seed, drawn from
    a stream seeded by ``seed``."""
    import tensorflow as tf

    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    return tf.data.Dataset.zip((dataset, seeds)).map(
        lambda batch, batch_seed: augment_batch(*batch, batch_seed), num_parallel_calls=tf.data.AUTOTUNE
    )


def _options(cfg: InputConfig, training: bool, n_files: int, workers: int):
    """Deterministic order unless training without ``cfg.deterministic``; auto-sharding by file
    when each of the ``workers`` gets at least two of the ``n_files`` shards, else by record."""
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = cfg.deterministic or not training
    many_files = n_files >= 2 * max(1, workers)
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.FILE if many_files else tf.data.experimental.AutoShardPolicy.DATA
    )
    return options


def make_dataset(
    manifest: dict,
    folder: str | os.PathLike,
    split: str,
    cfg: InputConfig,
    training: bool,
    workers: int = 1,
    replicas: int = 1,
):
    """Batches of (standardised image [N,H,W,C] float32, label [N,H,W,1] float32).

    ``training`` shuffles (files and records) and augments when asked; otherwise the order is
    the manifest's, so evaluation is reproducible. Under a distribution strategy the dataset
    is auto-sharded by file when each of the ``workers`` gets at least two shards, else by record.

    With several ``replicas`` every batch is full, since a replica handed an empty slice
    crashes TensorFlow's oneDNN convolutions on CPU: training drops the last partial batch
    (shuffling changes which chips it holds), evaluation pads it with repeated chips of
    weight 0 and yields (image, label, weight) so the padding counts for nothing.
    """
    import tensorflow as tf

    files = split_files(manifest, folder, split, cfg.verify_records)
    compression = manifest["records"]["compression"]
    size, n_channels, dtype = manifest["chip_size"], len(manifest["channels"]), manifest["records"]["dtype"]
    mean, std = normalisation(manifest)

    dataset = _read_records(files, compression, cfg, training)
    dataset = _cache_and_shuffle(dataset, manifest["splits"][split]["shards"], cfg, training)
    chips = manifest["splits"][split]["chips"]
    _check_replicas(split, chips, cfg, training, replicas)
    padded = replicas > 1 and not training
    if padded:
        dataset = _pad_with_weights(dataset, chips, cfg.batch_size)
    dataset = dataset.batch(cfg.batch_size, drop_remainder=replicas > 1 and training)
    dataset = dataset.map(
        _batch_parser(size, n_channels, dtype, mean, std, weighted=padded),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if training and cfg.augment:
        dataset = _augment(dataset, cfg.seed)
    return dataset.with_options(_options(cfg, training, len(files), workers)).prefetch(tf.data.AUTOTUNE)
