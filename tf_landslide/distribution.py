"""Where a run trains: the cluster (TF_CONFIG, or Vertex AI's CLUSTER_SPEC translated), its
strategy, which worker is the chief (the one that writes the run's files), and the compute dtype
the devices are best at."""

from __future__ import annotations

import contextlib
import json

import tensorflow as tf

from tf_landslide.config import BFLOAT16_CHOICES


def cluster_from_environment(environ: dict) -> str:
    """The cluster as TF_CONFIG JSON: TF_CONFIG itself, or Vertex AI's CLUSTER_SPEC translated.

    Vertex AI sets CLUSTER_SPEC ({"cluster": {"workerpool0": [...], ...}, "task": {"type":
    "workerpool0", "index": 0}}) for custom containers; pool 0 is the chief.
    """
    if environ.get("TF_CONFIG"):
        return environ["TF_CONFIG"]
    if not environ.get("CLUSTER_SPEC"):
        return ""
    spec = json.loads(environ["CLUSTER_SPEC"])
    pools = spec.get("cluster", {})
    names = {"workerpool0": "chief", "workerpool1": "worker", "workerpool2": "ps", "workerpool3": "evaluator"}
    cluster = {names[pool]: hosts for pool, hosts in pools.items() if pool in names and hosts}
    task = spec.get("task", {})
    return json.dumps(
        {"cluster": cluster, "task": {"type": names.get(task.get("type"), "chief"), "index": int(task.get("index", 0))}}
    )


def cluster_workers(cluster: str) -> int:
    if not cluster:
        return 1
    spec = json.loads(cluster).get("cluster", {})
    return sum(len(spec.get(role, [])) for role in ("chief", "worker")) or 1


def make_strategy(cluster: str):
    """MultiWorkerMirroredStrategy when ``cluster`` names several workers, else MirroredStrategy."""
    if cluster_workers(cluster) > 1:
        config = json.loads(cluster)
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(config["cluster"]),
            task_type=config["task"]["type"],
            task_id=config["task"]["index"],
            rpc_layer="grpc",
        )
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    return tf.distribute.MirroredStrategy()


def is_chief(cluster: str) -> bool:
    if cluster_workers(cluster) <= 1:
        return True
    task = json.loads(cluster)["task"]
    return task["type"] == "chief" or (
        task["type"] == "worker" and task["index"] == 0 and "chief" not in json.loads(cluster)["cluster"]
    )


# The x86 flags of native bfloat16 arithmetic, which oneDNN's bfloat16 convolutions run on. Without
# them (AVX2, or AVX-512 without BF16) oneDNN emulates bfloat16, slower than float32.
NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The first CPU's feature flags (empty where /proc/cpuinfo is not there)."""
    try:
        with open(cpuinfo) as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return set(value.split())
    except OSError:
        pass
    return set()


def compute_policy(mixed_precision: bool, bfloat16: str, cpuinfo: str = "/proc/cpuinfo") -> str:
    """Keras' dtype policy for training and the run's maps: ``mixed_float16`` with --mixed_precision (GPUs);
    ``mixed_bfloat16`` with --bfloat16=on, or =auto on a CPU with native bfloat16 and no GPU;
    else ``float32``."""
    if bfloat16 not in BFLOAT16_CHOICES:
        raise ValueError(f"--bfloat16={bfloat16!r}; choose one of {list(BFLOAT16_CHOICES)}")
    if mixed_precision:
        if bfloat16 == "on":
            raise ValueError(
                "--mixed_precision (float16, for GPUs) and --bfloat16=on ask for two compute dtypes; choose one"
            )
        return "mixed_float16"
    if bfloat16 == "on":
        return "mixed_bfloat16"
    if (
        bfloat16 == "auto"
        and cpu_flags(cpuinfo) & set(NATIVE_BFLOAT16_FLAGS)
        and not tf.config.list_physical_devices("GPU")
    ):
        return "mixed_bfloat16"
    return "float32"


@contextlib.contextmanager
def policy_scope(policy: str):
    """Keras' global dtype policy ``policy`` inside the block only, the previous one after: models
    built later (evaluation, serving, the next test) are not built mixed by accident."""
    previous = tf.keras.mixed_precision.global_policy()
    if policy != previous.name:
        tf.keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
