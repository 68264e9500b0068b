"""Our models against the authors' (segmentation-models-pytorch) on the same CPU, in one run.

    python bench/peer_bench.py [--archs unet,unetplusplus] [--batches 8,64] [--channels 4,8] [--runs 3]
                               [--peer_python PATH] [--isa native|avx2] [--model_dir runs/quickstart]

The peer is what the paper's authors train: segmentation-models-pytorch's ``Unet`` and
``UnetPlusPlus`` with a ResNet-50 encoder, two output classes and cross-entropy, Adam (learning
rate 0.01, weight decay 1e-4). Ours is the model ``train.py`` trains: ``train_lib.compiled_model``
(segmentation-models' U-Net or our UNet++, one sigmoid output, binary cross-entropy, our Adam with
PyTorch's L2 decay, the PR-AUC metric) under the MirroredStrategy training uses, fed by ``fit``.

For each architecture, batch size and channel count, every run starts one child process per
framework, in an order alternating between runs, and each child times on random in-memory chips
(128 x 128, encoder weights random):

* training: forward, loss, backward and the optimiser step; chips/s = batch / median step time;
* inference: the forward pass in inference mode (PyTorch ``eval`` + ``inference_mode``; ours the
  compiled ``tf.function`` the map uses), at the same batch size;
* the child's peak RSS.

Ours computes as ``train.py`` and the map do by default: in mixed bfloat16 on CPUs with native
bfloat16 instructions (``--bfloat16=auto``), else in float32; ``--bfloat16=off`` compares float32
with float32. The peer computes in float32, as the authors train.

With ``--model_dir`` (a trained 8-channel run, README command 1), it also times our serving path
(the SavedModel's ``serving_default``, raw channels in, standardised inside) and the map's
windows/s on the embedded cube (``map_bench.py``'s child). Both frameworks use every core
(PyTorch's and TensorFlow's defaults; ``--threads`` sets both).

The peer's venv is created on first use at ``--peer_venv`` (torch and torchvision from this
machine's disk, see ``--peer_requirements``; torch is no dependency of the package). ``--isa avx2``
caps oneDNN and MKL (both frameworks' CPU kernels) and PyTorch's ATen at AVX2, to see what an
AVX2-only CPU would run on an AVX-512 machine; TensorFlow's own Eigen kernels are built for AVX
either way.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHIP = 128
PEER_REQUIREMENTS = "torch==2.14.1 torchvision==0.29.1 segmentation-models-pytorch==0.6.0"
# Caps for --isa avx2: oneDNN (both frameworks' convolutions), MKL (PyTorch's GEMMs) and ATen's
# own vectorised kernels. TensorFlow's Eigen kernels are compiled for AVX and need no cap.
AVX2_CAPS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(step, warmup: int, steps: int) -> list[float]:
    """Seconds of each of ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    return seconds


# --- the children -----------------------------------------------------------------------------


def torch_child(args) -> dict:
    """The authors' model and training step (segmentation-models-pytorch, Adam, cross-entropy)."""
    import segmentation_models_pytorch as smp
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    architecture = {"unet": smp.Unet, "unetplusplus": smp.UnetPlusPlus}[args.arch]
    model = architecture("resnet50", encoder_weights=None, in_channels=args.channels, classes=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
    loss_function = torch.nn.CrossEntropyLoss()
    chips = torch.randn(args.batch, args.channels, CHIP, CHIP)
    labels = (torch.rand(args.batch, CHIP, CHIP) > 0.9).long()

    def train_step():
        optimizer.zero_grad()
        loss = loss_function(model(chips), labels)
        loss.backward()
        optimizer.step()
        loss.item()

    model.train()
    train = timed(train_step, args.warmup, args.train_steps)
    train_rss = peak_rss_gb()
    model.eval()
    with torch.inference_mode():
        infer = timed(lambda: model(chips), 1, args.infer_steps)
    return {"train": train, "infer": infer, "train_rss_gb": train_rss, "threads": torch.get_num_threads()}


def tf_child(args) -> dict:
    """Our model as train.py compiles and fits it, and the compiled inference the map runs."""
    import tf_landslide  # noqa: F401, I001  (first: the environment TensorFlow reads when it loads)
    import numpy as np
    import tensorflow as tf

    from tf_landslide import distribution, train_lib
    from tf_landslide.config import CubeConfig, ExportConfig, ModelConfig, TrainConfig

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    cfg = TrainConfig(export=ExportConfig(CubeConfig()), model=ModelConfig(arch=args.arch), bfloat16=args.bfloat16)
    manifest = {"channels": [f"c{i}" for i in range(args.channels)], "chip_size": CHIP}
    # The run's compute dtype, for training and inference alike (as the map's --bfloat16); this
    # process ends with the measurement, so the policy is not restored.
    tf.keras.mixed_precision.set_global_policy(distribution.compute_policy(cfg.mixed_precision, cfg.bfloat16))
    with distribution.make_strategy("").scope():
        model = train_lib.compiled_model(cfg, manifest)
    rng = np.random.default_rng(0)
    chips = rng.standard_normal((args.batch, CHIP, CHIP, args.channels), dtype=np.float32)
    labels = (rng.random((args.batch, CHIP, CHIP, 1)) > 0.9).astype(np.float32)
    batches = tf.data.Dataset.from_tensors((chips, labels)).repeat()

    # Step times from fit's own loop (its callbacks, metrics and strategy included), read at each
    # batch's start; fit once first for the tracing.
    model.fit(batches, steps_per_epoch=args.warmup, epochs=1, verbose=0)
    starts = []
    clock = tf.keras.callbacks.LambdaCallback(on_train_batch_begin=lambda *_: starts.append(time.perf_counter()))
    model.fit(batches, steps_per_epoch=args.train_steps + 1, epochs=1, verbose=0, callbacks=[clock])
    train = list(np.diff(starts))
    train_rss = peak_rss_gb()

    predict = tf.function(lambda x: model(x, training=False))
    inputs = tf.constant(chips)
    infer = timed(lambda: predict(inputs).numpy(), 1, args.infer_steps)
    return {
        "train": train,
        "infer": infer,
        "train_rss_gb": train_rss,
        "threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
        "policy": tf.keras.mixed_precision.global_policy().name,
    }


def serving_child(args) -> dict:
    """The SavedModel's ``serving_default`` (raw channels in) on random chips, at each batch size."""
    import tf_landslide  # noqa: F401, I001  (first: the environment TensorFlow reads when it loads)
    import numpy as np
    import tensorflow as tf

    from tf_landslide import serving

    with tempfile.TemporaryDirectory() as folder:
        serving.export_flat(args.model_dir, folder)
        serve = tf.saved_model.load(folder).signatures["serving_default"]
        channels = json.loads((Path(args.model_dir) / "manifest.json").read_text())["channels"]
        rates = {}
        for batch in args.batch_sizes:
            chips = tf.constant(np.random.default_rng(0).random((batch, CHIP, CHIP, len(channels)), dtype=np.float32))
            seconds = timed(lambda chips=chips: serve(chips), 1, args.infer_steps)
            rates[batch] = batch / statistics.median(seconds)
    return {"chips_per_second": rates, "channels": len(channels), "peak_rss_gb": peak_rss_gb()}


# --- the parent -------------------------------------------------------------------------------


def peer_python(args) -> str:
    """The peer venv's python, creating the venv on first use."""
    if args.peer_python:
        return args.peer_python
    python = Path(args.peer_venv) / "bin" / "python"
    if not python.exists():
        print(f"creating the peer's venv in {args.peer_venv} ({args.peer_requirements})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", args.peer_venv], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *args.peer_requirements.split()], check=True)
    return str(python)


def run_child(python: str, mode: str, arguments: list[str], env: dict) -> dict:
    command = [python, __file__, f"--child={mode}", *arguments]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rates(result: dict, batch: int) -> tuple[float, float]:
    return batch / statistics.median(result["train"]), batch / statistics.median(result["infer"])


def compare(args, env: dict, python: str) -> list[dict]:
    rows = []
    for arch in args.archs:
        for batch in args.batch_sizes:
            for channels in args.channel_counts:
                arguments = [
                    f"--arch={arch}",
                    f"--batch={batch}",
                    f"--channels={channels}",
                    f"--warmup={args.warmup}",
                    f"--train_steps={args.train_steps}",
                    f"--infer_steps={args.infer_steps}",
                    f"--threads={args.threads}",
                    f"--bfloat16={args.bfloat16}",
                ]
                runs = {"peer": [], "ours": []}
                for run in range(args.runs):
                    order = ["peer", "ours"] if run % 2 == 0 else ["ours", "peer"]
                    for who in order:
                        mode, interpreter = ("torch", python) if who == "peer" else ("tf", sys.executable)
                        result = run_child(interpreter, mode, arguments, env)
                        runs[who].append(result)
                        train, infer = rates(result, batch)
                        print(
                            f"{arch} batch {batch} C={channels} run {run + 1} {who}: train {train:.2f} chips/s, "
                            f"inference {infer:.2f} chips/s, peak RSS {result['train_rss_gb']:.2f} GB, "
                            f"{result['threads']} threads, {result.get('policy', 'float32')}",
                            flush=True,
                        )
                rows.append(summarise(arch, batch, channels, runs))
    return rows


def summarise(arch: str, batch: int, channels: int, runs: dict) -> dict:
    row = {"arch": arch, "batch": batch, "channels": channels}
    for who, results in runs.items():
        train, infer = zip(*(rates(result, batch) for result in results), strict=True)
        row[who] = {
            "train": statistics.median(train),
            "infer": statistics.median(infer),
            "rss": max(result["train_rss_gb"] for result in results),
        }
    # Ratios per run (the two children of a run ran back to back), then their median.
    row["train_ratio"] = statistics.median(
        rates(ours, batch)[0] / rates(peer, batch)[0] for ours, peer in zip(runs["ours"], runs["peer"], strict=True)
    )
    row["infer_ratio"] = statistics.median(
        rates(ours, batch)[1] / rates(peer, batch)[1] for ours, peer in zip(runs["ours"], runs["peer"], strict=True)
    )
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| model | batch | C | train chips/s ours / peer | ratio | inference chips/s ours / peer | ratio "
        "| peak RSS GB ours / peer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = {"unet": "U-Net ResNet-50", "unetplusplus": "UNet++ ResNet-50"}
    for row in rows:
        ours, peer = row["ours"], row["peer"]
        lines.append(
            f"| {names[row['arch']]} | {row['batch']} | {row['channels']} "
            f"| {ours['train']:.2f} / {peer['train']:.2f} | **{row['train_ratio']:.2f}x** "
            f"| {ours['infer']:.2f} / {peer['infer']:.2f} | **{row['infer_ratio']:.2f}x** "
            f"| {ours['rss']:.2f} / {peer['rss']:.2f} |"
        )
    return "\n".join(lines)


def our_serving_and_map(args, env: dict) -> list[str]:
    """Our SavedModel's chips/s and the map's windows/s, for the trained run in --model_dir."""
    arguments = [f"--model_dir={args.model_dir}", f"--batches={','.join(map(str, args.batch_sizes))}"]
    served = run_child(sys.executable, "serving", [*arguments, f"--infer_steps={args.infer_steps}"], env)
    lines = [
        f"our SavedModel (serving_default, {served['channels']} raw channels in), batch {batch}: {rate:.2f} chips/s"
        for batch, rate in served["chips_per_second"].items()
    ]
    command = [sys.executable, str(REPO / "bench" / "map_bench.py"), "--size=embedded"]
    command += [f"--model_dir={args.model_dir}", f"--cache_dir={args.cache_dir}", f"--bfloat16={args.bfloat16}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    mapped = json.loads(done.stdout.strip().splitlines()[-1])
    lines.append(
        f"the map (embedded cube, {mapped['windows']} windows of 512 px, batch 4, every output, {mapped['policy']}): "
        f"{mapped['windows'] / mapped['map_seconds']:.2f} windows/s "
        f"({mapped['windows'] * 16 / mapped['map_seconds']:.1f} chips of 128 px/s; "
        f"raw inference of the same windows {mapped['windows'] / mapped['raw_seconds']:.2f} windows/s)"
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", default="unet,unetplusplus")
    parser.add_argument("--batches", default="8,64")
    parser.add_argument("--channels", default="4,8")
    parser.add_argument("--runs", type=int, default=3, help="child pairs per configuration (medians reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    parser.add_argument("--train_steps", type=int, default=5, help="timed training steps per child")
    parser.add_argument("--infer_steps", type=int, default=5, help="timed inference batches per child")
    parser.add_argument("--threads", type=int, default=0, help="threads for both frameworks (0: their defaults)")
    parser.add_argument("--isa", choices=("native", "avx2"), default="native", help="cap the CPU kernels at AVX2")
    parser.add_argument("--bfloat16", choices=("auto", "on", "off"), default="auto", help="ours: train.py's --bfloat16")
    parser.add_argument("--peer_venv", default=str(Path.home() / ".cache" / "tf_landslide" / "peer-venv"))
    parser.add_argument("--peer_python", default="", help="an existing python with torch and smp (skips the venv)")
    parser.add_argument("--peer_requirements", default=PEER_REQUIREMENTS)
    parser.add_argument("--model_dir", default="", help="a trained 8-channel run: also our serving path and the map")
    parser.add_argument("--cache_dir", default=str(Path.home() / ".cache" / "tf_landslide"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--arch", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.archs = args.archs.split(",")
    args.batch_sizes = [int(b) for b in args.batches.split(",")]
    args.channel_counts = [int(c) for c in args.channels.split(",")]
    if args.child:
        args.channels = args.channel_counts[0]
        child = {"torch": torch_child, "tf": tf_child, "serving": serving_child}[args.child]
        print(json.dumps(child(args)))
        return 0

    sys.path.insert(0, str(REPO / "bench"))
    import machine

    env = {**os.environ, "PYTHONPATH": str(REPO), **(AVX2_CAPS if args.isa == "avx2" else {})}
    if args.isa == "avx2" and args.bfloat16 == "auto":
        args.bfloat16 = "off"  # what auto chooses on an AVX2-only CPU (capped here, bfloat16 would be emulated)
    print(machine.describe(), f"kernels: {args.isa}", flush=True)
    python = peer_python(args)
    versions = subprocess.run(
        [python, "-c", "import torch, segmentation_models_pytorch as smp; print(torch.__version__, smp.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    print(f"peer: torch {versions[0]}, segmentation-models-pytorch {versions[1]}", flush=True)
    rows = compare(args, env, python)
    print(
        f"\ntraining: median of {args.train_steps} steps after {args.warmup}; inference: median of "
        f"{args.infer_steps} batches; medians over {args.runs} runs, ratios ours / peer per run"
    )
    print(table(rows))
    if args.model_dir:
        print("\n".join(our_serving_and_map(args, env)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
