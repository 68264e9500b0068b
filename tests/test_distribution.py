"""The cluster comes from TF_CONFIG or Vertex AI's CLUSTER_SPEC."""

import json

import pytest

from tf_landslide import distribution

VERTEX_SPEC = {
    "cluster": {"workerpool0": ["host0:2222"], "workerpool1": ["host1:2222", "host2:2222"]},
    "task": {"type": "workerpool1", "index": 1},
}


def test_tf_config_passes_through_and_wins_over_cluster_spec():
    tf_config = json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}})
    assert distribution.cluster_from_environment({"TF_CONFIG": tf_config}) == tf_config
    both = {"TF_CONFIG": tf_config, "CLUSTER_SPEC": json.dumps(VERTEX_SPEC)}
    assert distribution.cluster_from_environment(both) == tf_config
    assert distribution.cluster_workers(tf_config) == 2
    assert distribution.is_chief(tf_config)  # worker 0 of a cluster without a chief
    other = json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}})
    assert not distribution.is_chief(other)


def test_vertex_cluster_spec_becomes_tf_config():
    cluster = distribution.cluster_from_environment({"CLUSTER_SPEC": json.dumps(VERTEX_SPEC)})
    assert json.loads(cluster) == {
        "cluster": {"chief": ["host0:2222"], "worker": ["host1:2222", "host2:2222"]},
        "task": {"type": "worker", "index": 1},
    }
    assert distribution.cluster_workers(cluster) == 3
    assert not distribution.is_chief(cluster)
    worker0 = distribution.cluster_from_environment(
        {"CLUSTER_SPEC": json.dumps({**VERTEX_SPEC, "task": {"type": "workerpool1", "index": 0}})}
    )
    assert not distribution.is_chief(worker0)  # the chief pool exists, so worker 0 is not the chief
    chief = distribution.cluster_from_environment(
        {"CLUSTER_SPEC": json.dumps({**VERTEX_SPEC, "task": {"type": "workerpool0", "index": 0}})}
    )
    assert json.loads(chief)["task"] == {"type": "chief", "index": 0}
    assert distribution.is_chief(chief)


def test_single_replica_and_empty_environment():
    assert distribution.cluster_from_environment({}) == ""
    assert distribution.cluster_from_environment({"TF_CONFIG": "", "CLUSTER_SPEC": ""}) == ""
    assert distribution.cluster_workers("") == 1 and distribution.is_chief("")
    alone = distribution.cluster_from_environment(
        {"CLUSTER_SPEC": json.dumps({"cluster": {"workerpool0": ["h:1"]}, "task": {"type": "workerpool0", "index": 0}})}
    )
    assert distribution.cluster_workers(alone) == 1 and distribution.is_chief(alone)


def cpuinfo_with(tmp_path, flags: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: fpu sse2 {flags}\n\nprocessor\t: 1\n")
    return str(path)


@pytest.mark.parametrize(
    ("flags", "policy"),
    [
        ("avx2 fma", "float32"),  # no bfloat16 instructions: oneDNN would emulate it, slower
        ("avx2 avx512f avx512bw", "float32"),
        ("avx2 avx512f avx512_bf16", "mixed_bfloat16"),
        ("avx2 amx_tile amx_bf16", "mixed_bfloat16"),
    ],
)
def test_auto_trains_in_bfloat16_only_where_the_cpu_has_it(tmp_path, flags, policy):
    assert distribution.compute_policy(False, "auto", cpuinfo_with(tmp_path, flags)) == policy


def test_bfloat16_on_off_and_float16(tmp_path):
    native, plain = cpuinfo_with(tmp_path, "avx512_bf16"), cpuinfo_with(tmp_path, "avx2")
    assert distribution.compute_policy(False, "on", plain) == "mixed_bfloat16"
    assert distribution.compute_policy(False, "off", native) == "float32"
    assert distribution.compute_policy(False, "auto", str(tmp_path / "no-cpuinfo")) == "float32"
    # --mixed_precision (float16 for GPUs) wins over auto, and asking for both is an error.
    assert distribution.compute_policy(True, "auto", native) == "mixed_float16"
    with pytest.raises(ValueError, match="choose one"):
        distribution.compute_policy(True, "on", native)
    with pytest.raises(ValueError, match="--bfloat16='yes'"):
        distribution.compute_policy(False, "yes", native)
