"""Input pipeline and training throughput on the embedded cube (8-channel configuration).

    python bench/pipeline_bench.py [--config vv_vh_dem_t1] [--repeats 5] [--train_steps 30] [--gpu_flags]

(a) tf.data chips/s of our pipeline (read, parse, standardise; cache off) against bare TFRecord
    byte reading of the same shards, in the same run (target >= 0.5x).
(b) Training chips/s of the U-Net/ResNet-50 fed by our pipeline against the same model fed
    in-memory tensors (target >= 0.9x: the pipeline never starves the model).
(c) With --gpu_flags: training chips/s of the run's model (train_lib.compiled_model) on in-memory
    tensors with no flag (float32), --mixed_precision, --jit_compile, both, and the CPU's
    --bfloat16=on, alternating, and the time of
    each one's first two steps (build, trace and compile); ratios to no flag.
Medians of several runs; the ratios are measured in the same run.
"""

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import machine  # noqa: E402  (bench/machine.py: a script's folder is on sys.path)
import tensorflow as tf  # noqa: E402

import tf_landslide  # noqa: F401  (environment for tf-keras before TensorFlow loads)
from tf_landslide import data, export, models, train_lib  # noqa: E402
from tf_landslide.config import CubeConfig, ExportConfig, InputConfig, ModelConfig, SplitSpec, TrainConfig  # noqa: E402

# float32 unless a flag says otherwise (--bfloat16=auto would train in bfloat16 on some CPUs), and
# the CPU's own mixed precision beside the GPU's.
GPU_FLAGS = {
    "no flag": {"bfloat16": "off"},
    "--mixed_precision": {"mixed_precision": True},
    "--jit_compile": {"jit_compile": True, "bfloat16": "off"},
    "both": {"mixed_precision": True, "jit_compile": True},
    "--bfloat16=on": {"bfloat16": "on"},
}


def chips_per_second(dataset, epochs: int) -> float:
    """Chips per second over ``epochs`` passes (after one warm-up pass)."""
    for _ in dataset:
        pass
    count, started = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in dataset:
            count += int(tf.shape(batch[0] if isinstance(batch, tuple) else batch)[0])
    return count / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="vv_vh_dem_t1")
    parser.add_argument("--cache_dir", default=str(Path.home() / ".cache" / "tf_landslide"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10, help="passes over the train split per pipeline timing")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--train_steps", type=int, default=30, help="timed training steps per repeat")
    parser.add_argument("--gpu_flags", action="store_true", help="also (c): training with the GPU flags")
    parser.add_argument("--gpu_flags_steps", type=int, default=10, help="timed steps per repeat in (c)")
    args = parser.parse_args()
    print(machine.describe(), flush=True)

    records_dir = tempfile.mkdtemp(prefix="pipeline-bench-")
    export_cfg = ExportConfig(cube=CubeConfig(cache_dir=args.cache_dir), config=args.config, records_dir=records_dir,
                              split=SplitSpec(), progress=False, workers=0)
    manifest = export.export(export_cfg)
    folder = Path(records_dir) / args.config
    files = data.split_files(manifest, folder, "train", verify=False)
    cfg = InputConfig(batch_size=args.batch_size, cache_mb=0)
    n_chips = manifest["splits"]["train"]["chips"]
    print(f"config {args.config}: {n_chips} train chips, {len(manifest['channels'])} channels, batch {args.batch_size}")

    bare = tf.data.TFRecordDataset(files).batch(args.batch_size).prefetch(tf.data.AUTOTUNE)
    # Training as it runs by default (the split fits in memory, so it is cached after the first
    # pass), and with the cache off (splits larger than --cache_mb: every pass reads the files).
    variants = {"default (cached)": dataclasses.replace(cfg, cache_mb=2048), "cache off": cfg}
    rates = {"bare": [], **{name: [] for name in variants}}
    for _ in range(args.repeats):
        rates["bare"].append(chips_per_second(bare, args.epochs))
        for name, variant in variants.items():
            ours = data.make_dataset(manifest, folder, "train", dataclasses.replace(variant, verify_records=False),
                                     training=True)
            rates[name].append(chips_per_second(ours, args.epochs))
    print(f"(a) bare TFRecord read      : median {statistics.median(rates['bare']):,.0f} chips/s  "
          f"runs {[round(r) for r in rates['bare']]}")
    for name in variants:
        ratios = [o / b for o, b in zip(rates[name], rates["bare"], strict=True)]
        print(f"    ours, {name:17s}: median {statistics.median(rates[name]):,.0f} chips/s, ratio to bare "
              f"{statistics.median(ratios):.2f} (target >= 0.5)  ratios {[round(r, 2) for r in ratios]}")

    # (b) the same model and step, fed by our pipeline or by tensors already in memory.
    images, labels = zip(*[(x, y) for x, y in data.make_dataset(manifest, folder, "train", cfg, training=False)],
                         strict=True)
    in_memory = (tf.data.Dataset.from_tensor_slices((tf.concat(images, 0), tf.concat(labels, 0)))
                 .cache().repeat().shuffle(256).batch(args.batch_size, drop_remainder=True)
                 .prefetch(tf.data.AUTOTUNE))
    pipeline = data.make_dataset(manifest, folder, "train", dataclasses.replace(cfg, cache_mb=2048), training=True)
    pipeline = pipeline.unbatch().repeat().batch(args.batch_size, drop_remainder=True)
    model = models.build_model(ModelConfig(), len(manifest["channels"]), manifest["chip_size"])
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="binary_crossentropy")

    def train_rate(dataset) -> float:
        model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)  # warm-up (tracing)
        started = time.perf_counter()
        model.fit(dataset, steps_per_epoch=args.train_steps, epochs=1, verbose=0)
        return args.train_steps * args.batch_size / (time.perf_counter() - started)

    memory_rates, pipeline_rates = [], []
    for _ in range(max(1, args.repeats // 2)):
        memory_rates.append(train_rate(in_memory))
        pipeline_rates.append(train_rate(pipeline))
    train_ratios = [p / m for p, m in zip(pipeline_rates, memory_rates, strict=True)]
    print(f"(b) training, in-memory tensors: median {statistics.median(memory_rates):.2f} chips/s  "
          f"runs {[round(r, 2) for r in memory_rates]}")
    print(f"    training, our pipeline     : median {statistics.median(pipeline_rates):.2f} chips/s  "
          f"runs {[round(r, 2) for r in pipeline_rates]}")
    print(f"    ratio pipeline/in-memory   : median {statistics.median(train_ratios):.3f} (target >= 0.9)  runs "
          f"{[round(r, 3) for r in train_ratios]}")
    if args.gpu_flags:
        gpu_flag_rates(TrainConfig(export=export_cfg, input=cfg), manifest, in_memory, args)


def gpu_flag_rates(base: TrainConfig, manifest: dict, dataset, args) -> None:
    """(c): every combination of the GPU flags, built and compiled as a run builds it."""
    compiled, first_steps = {}, {}
    for name, flags in GPU_FLAGS.items():
        cfg = dataclasses.replace(base, **flags)
        started = time.perf_counter()
        with train_lib.dtype_policy(cfg):
            compiled[name] = train_lib.compiled_model(cfg, manifest)
        compiled[name].fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
        first_steps[name] = time.perf_counter() - started
    rates = {name: [] for name in GPU_FLAGS}
    for _ in range(args.repeats):
        for name, model in compiled.items():
            started = time.perf_counter()
            model.fit(dataset, steps_per_epoch=args.gpu_flags_steps, epochs=1, verbose=0)
            rates[name].append(args.gpu_flags_steps * args.batch_size / (time.perf_counter() - started))
    print(f"(c) training with the GPU flags (in-memory tensors, {args.gpu_flags_steps} steps per run):")
    for name in GPU_FLAGS:
        ratios = [r / n for r, n in zip(rates[name], rates["no flag"], strict=True)]
        print(f"    {name:17s}: median {statistics.median(rates[name]):.2f} chips/s, ratio to no flag "
              f"{statistics.median(ratios):.2f}, first 2 steps {first_steps[name]:.1f} s  "
              f"runs {[round(r, 2) for r in rates[name]]}")


if __name__ == "__main__":
    main()
