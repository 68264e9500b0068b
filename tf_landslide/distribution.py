"""Where a run trains: the cluster (TF_CONFIG, or Vertex AI's CLUSTER_SPEC translated), its
strategy, and which worker is the chief (the one that writes the run's files)."""

from __future__ import annotations

import json

import tensorflow as tf


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
