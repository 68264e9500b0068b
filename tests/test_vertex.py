"""The Vertex AI job contract, by simulation: AIP_* variables and CLUSTER_SPEC set as Vertex AI sets them
(file:// URLs, so any local-only call on a folder fails), the real entry points run, and the outputs land
where Vertex AI looks for them; a killed job resumes from AIP_CHECKPOINT_DIR. Plus the job configs and
the worker pool specs, and a training whose model folder is an fsspec URL (memory://, as gs:// would be)."""

import tf_landslide  # noqa: F401, I001  (first: it sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import csv
import dataclasses
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import shlex
import textwrap
import types
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
import tensorflow as tf
import yaml

from tests.helpers import finish_runners, make_config
from tf_landslide import export, model_folder, serving, storage, train_lib, vertex
from tf_landslide import flags as landslide_flags
from tf_landslide.cube import synthetic

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# --- 1. the environment fills the folders the flags leave unset ---------------------------------


@pytest.fixture
def parse():
    def parse_flags(*argv):
        landslide_flags.FLAGS.unparse_flags()
        landslide_flags.FLAGS(["prog", *argv])
        return landslide_flags.FLAGS

    yield parse_flags
    landslide_flags.FLAGS.unparse_flags()


VERTEX = {
    "AIP_MODEL_DIR": "gs://bucket/job/model/",
    "AIP_CHECKPOINT_DIR": "gs://bucket/job/checkpoints/",
    "AIP_TENSORBOARD_LOG_DIR": "gs://bucket/job/logs/",
}


def test_vertex_variables_set_the_folders(parse):
    values = parse("--config=vv_t1")
    cfg = landslide_flags.train_config(values, environ=VERTEX)
    assert cfg.model_dir == "gs://bucket/job/model/"
    assert cfg.checkpoint_dir == "gs://bucket/job/checkpoints/"
    assert cfg.tensorboard_dir == "gs://bucket/job/logs/"
    assert cfg.savedmodel_dir == cfg.model_dir  # the SavedModel for Vertex AI's model upload
    assert landslide_flags.eval_config(values, environ=VERTEX).model_dir == cfg.model_dir
    text = landslide_flags.flags_text(values, environ=VERTEX)  # flags.txt reproduces where the run wrote
    for line in (
        "--model_dir=gs://bucket/job/model/",
        "--checkpoint_dir=gs://bucket/job/checkpoints/",
        "--tensorboard_dir=gs://bucket/job/logs/",
        "--export_savedmodel=true",
    ):
        assert line in text.splitlines()


def test_explicit_flags_win_over_the_environment(parse, tmp_path):
    flagfile = tmp_path / "run.flags"
    flagfile.write_text("--model_dir=gs://mine/model\n--tensorboard_dir=\n")
    values = parse(f"--flagfile={flagfile}", "--checkpoint_dir=gs://mine/ckpt")
    cfg = landslide_flags.train_config(values, environ=VERTEX)
    assert (cfg.model_dir, cfg.checkpoint_dir) == ("gs://mine/model", "gs://mine/ckpt")
    assert cfg.tensorboard_dir == ""  # set (to empty: <model_dir>/logs) in the flagfile
    assert cfg.savedmodel_dir == ""  # the model folder is not AIP_MODEL_DIR: no SavedModel unless asked
    assert landslide_flags.train_config(parse("--export_savedmodel"), environ={}).savedmodel_dir == "runs/model"
    assert landslide_flags.train_config(parse("--noexport_savedmodel"), environ=VERTEX).savedmodel_dir == ""


def test_without_vertex_nothing_changes(parse):
    values = parse("--config=vv_t1")
    cfg = landslide_flags.train_config(values)
    assert (cfg.model_dir, cfg.checkpoint_dir, cfg.tensorboard_dir, cfg.savedmodel_dir) == ("runs/model", "", "", "")
    assert landslide_flags.train_config(values, environ={"AIP_MODEL_DIR": ""}).model_dir == "runs/model"
    assert "--model_dir=runs/model" in landslide_flags.flags_text(values).splitlines()


# --- 2. worker pool specs and job configs ----------------------------------------------------


def test_worker_pool_specs_name_machines_gpus_replicas_and_the_flagfile():
    args = ["--flagfile=configs/vv_t4.flags", "--records_dir=gs://b/records"]
    (single,) = vertex.worker_pool_specs("image:1", args)
    assert single["replica_count"] == 1
    assert single["machine_spec"] == {
        "machine_type": "n1-standard-8",
        "accelerator_type": "NVIDIA_TESLA_T4",
        "accelerator_count": 1,
    }
    assert single["container_spec"] == {"image_uri": "image:1", "args": args}
    (four,) = vertex.worker_pool_specs("image:1", args, vertex.PRESETS["multi_gpu"])
    assert four["machine_spec"]["accelerator_count"] == 4 and four["replica_count"] == 1
    chief, workers = vertex.worker_pool_specs("image:1", args, vertex.PRESETS["multi_worker"])
    assert (chief["replica_count"], workers["replica_count"]) == (1, 2)  # pool 0 = chief, pool 1 = workers
    assert chief["machine_spec"] == workers["machine_spec"] and chief["machine_spec"]["accelerator_count"] == 2
    assert workers["container_spec"]["args"] == args
    cpu_only = vertex.worker_pool_specs("image:1", args, vertex.Machines(accelerator_count=0))
    assert cpu_only[0]["machine_spec"] == {"machine_type": "n1-standard-8"}
    with pytest.raises(ValueError):
        vertex.worker_pool_specs("image:1", args, vertex.Machines(replicas=0))


@pytest.mark.parametrize("preset", sorted(vertex.PRESETS))
def test_job_configs_are_generated_and_parse(preset):
    path = REPO / "vertex" / f"{preset}.yaml"
    assert path.read_text() == vertex.job_config_text(preset), "stale: run python vertex/generate.py"
    spec = yaml.safe_load(path.read_text())
    assert spec["baseOutputDirectory"]["outputUriPrefix"].startswith("gs://")  # what makes Vertex set AIP_*
    pools = spec["workerPoolSpecs"]
    machines = vertex.PRESETS[preset]
    assert [pool["replicaCount"] for pool in pools] == [1] + ([machines.replicas - 1] if machines.replicas > 1 else [])
    for pool in pools:
        assert pool["machineSpec"]["acceleratorCount"] == machines.accelerator_count
        args = pool["containerSpec"]["args"]
        flagfile = args[0].split("=", 1)[1]
        assert args[0].startswith("--flagfile=") and (REPO / flagfile).is_file()
        assert not any(a.startswith("--model_dir") for a in args)  # AIP_MODEL_DIR decides
        landslide_flags.FLAGS(["prog", *[a.replace("gs://BUCKET/records", "records") for a in args]])
        try:
            cfg = landslide_flags.train_config(environ=VERTEX)
        finally:
            landslide_flags.FLAGS.unparse_flags()
        assert cfg.model_dir == VERTEX["AIP_MODEL_DIR"] and cfg.savedmodel_dir == cfg.model_dir
        assert cfg.input.batch_size % (machines.accelerator_count * machines.replicas) == 0


def test_dockerfile_builds_on_the_official_gpu_image_and_runs_train():
    text = (REPO / "vertex" / "Dockerfile").read_text()
    assert "FROM tensorflow/tensorflow:2.21.0-gpu" in text.splitlines()
    assert '".[gcp,serving]"' in text and 'ENTRYPOINT ["python3", "train.py"]' in text


def test_submit_without_the_sdk_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[vertex\]"'):
        vertex.submit("image", [], "gs://b/out", "project", "us-central1")


# --- 2b. the model upload and the serving container ---------------------------------------------


def test_upload_arguments_name_the_folder_image_port_and_routes():
    prebuilt = vertex.model_upload_args("gs://b/runs/j/model/", vertex.prebuilt_container(), "landslides")
    assert prebuilt == {
        "display_name": "landslides",
        "artifact_uri": "gs://b/runs/j/model/",
        "serving_container_image_uri": "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
    }
    gpu = vertex.prebuilt_container(gpu=True, registry="europe")
    assert gpu.image_uri == "europe-docker.pkg.dev/vertex-ai/prediction/tf2-gpu.2-15:latest" and not gpu.versioned
    own = vertex.model_upload_args("gs://b/runs/j/serving/", vertex.own_container("r-docker.pkg.dev/p/t/serving:1"))
    assert own == {
        "display_name": "tf-landslide",
        "artifact_uri": "gs://b/runs/j/serving/",
        "serving_container_image_uri": "r-docker.pkg.dev/p/t/serving:1",
        "serving_container_predict_route": "/v1/models/landslide:predict",
        "serving_container_health_route": "/v1/models/landslide/metadata",
        "serving_container_ports": [8080],
    }
    with pytest.raises(ValueError, match="must be a gs:// URL"):
        vertex.model_upload_args("runs/j/model", vertex.prebuilt_container())


def _fake_aiplatform(monkeypatch) -> list:
    """google.cloud.aiplatform replaced by a module that records its calls (no SDK, no network)."""
    calls = []
    fake = types.ModuleType("google.cloud.aiplatform")
    fake.init = lambda **kwargs: calls.append(("init", kwargs))

    class Model:
        @staticmethod
        def upload(**kwargs):
            calls.append(("upload", kwargs))
            return types.SimpleNamespace(resource_name="projects/p/locations/r/models/1")

    fake.Model = Model
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", fake)
    try:
        importlib.import_module("google.cloud")
    except ImportError:  # without any google-cloud package, the namespace package too
        monkeypatch.setitem(sys.modules, "google.cloud", types.ModuleType("google.cloud"))
    monkeypatch.setattr(sys.modules["google.cloud"], "aiplatform", fake, raising=False)
    return calls


def test_upload_hands_those_arguments_to_the_sdk(monkeypatch):
    calls = _fake_aiplatform(monkeypatch)
    checked = []
    monkeypatch.setattr(vertex, "artifact_problem", lambda uri, container: checked.append(uri))  # no gs:// here
    container = vertex.own_container("img")
    model = vertex.upload_model("gs://b/runs/j/serving/", container, "project", "europe-west4", "landslides")
    assert model.resource_name.endswith("/models/1") and checked == ["gs://b/runs/j/serving/"]
    assert calls == [
        ("init", {"project": "project", "location": "europe-west4"}),
        (
            "upload",
            {
                "project": "project",
                "location": "europe-west4",
                "sync": True,
                **vertex.model_upload_args("gs://b/runs/j/serving/", container, "landslides"),
            },
        ),
    ]
    monkeypatch.setattr(vertex, "artifact_problem", lambda uri, container: "no SavedModel there")
    with pytest.raises(ValueError, match="no SavedModel there"):
        vertex.upload_model("gs://b/runs/j/serving/", container, "project", "europe-west4")


def test_upload_without_the_sdk_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[vertex\]".*--dry_run'):
        vertex.upload_model("gs://b/m/", vertex.prebuilt_container(), "project", "us-central1")


def test_artifact_folders_are_checked_against_the_container(tmp_path):
    flat, versioned = tmp_path / "model", tmp_path / "serving"
    (flat / "variables").mkdir(parents=True)
    (versioned / "1" / "variables").mkdir(parents=True)
    (flat / serving.SAVED_MODEL_PB).write_bytes(b"")
    (versioned / "1" / serving.SAVED_MODEL_PB).write_bytes(b"")
    prebuilt, own = vertex.prebuilt_container(), vertex.own_container()
    assert vertex.artifact_problem(str(flat), prebuilt) is None
    assert vertex.artifact_problem(str(versioned), own) is None
    assert "prebuilt containers' layout" in vertex.artifact_problem(str(flat), own)
    assert f"--export_dir={flat}" in vertex.artifact_problem(str(flat), own)
    assert "AIP_MODEL_DIR" in vertex.artifact_problem(str(versioned), prebuilt)
    assert "is not a folder" in vertex.artifact_problem(str(tmp_path / "nowhere"), prebuilt)


def test_upload_script_prints_the_readme_s_gcloud_commands():
    readme = " ".join((REPO / "README.md").read_text().replace("\\\n", " ").split())
    for argv, container, artifact in [
        ([], vertex.prebuilt_container(), vertex.MODEL_PLACEHOLDER),
        (["--container=own"], vertex.own_container(), vertex.EXPORT_PLACEHOLDER),
    ]:
        command = shlex.join(vertex.upload_command(artifact, container))
        assert command in readme, f"README's upload command is stale; it should read: {command}"
        done = subprocess.run(
            [sys.executable, "vertex/upload.py", "--dry_run", "--region=REGION", f"--artifact_uri={artifact}", *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == command


def _serving_entrypoint() -> tuple[str, list[str]]:
    text = (REPO / "vertex" / "Dockerfile.serving").read_text()
    (base,) = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    (entrypoint,) = [line.removeprefix("ENTRYPOINT ") for line in text.splitlines() if line.startswith("ENTRYPOINT ")]
    return base, json.loads(entrypoint)  # the exec form: a JSON array


def test_serving_dockerfile_runs_tf_serving_on_the_port_and_routes_the_upload_declares(tmp_path):
    base, entrypoint = _serving_entrypoint()
    # TF Serving of the TensorFlow that writes our SavedModels (and that the training image runs).
    assert base == f"tensorflow/serving:{tf.__version__}"
    assert f"FROM tensorflow/tensorflow:{tf.__version__}-gpu" in (REPO / "vertex" / "Dockerfile").read_text()
    # The entry point as the container runs it, with a tensorflow_model_server that prints its arguments.
    server = tmp_path / "tensorflow_model_server"
    server.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    server.chmod(0o755)
    path = f"{tmp_path}:{os.environ['PATH']}"

    def run(*cmd, **env):
        return subprocess.run([*entrypoint, *cmd], env={"PATH": path, **env}, capture_output=True, text=True)

    done = run("--rest_api_timeout_in_ms=60000", AIP_HTTP_PORT="7070", AIP_STORAGE_URI="gs://b/copy")
    assert done.returncode == 0, done.stderr
    args = dict(a.removeprefix("--").split("=", 1) for a in done.stdout.split())
    model = args["model_name"]
    assert args["rest_api_port"] == "7070" and args["model_base_path"] == "gs://b/copy"
    assert args["rest_api_timeout_in_ms"] == "60000"  # the Model's container args reach the server
    assert args["port"] != args["rest_api_port"] and args["file_system_poll_wait_seconds"] == "0"
    # Vertex AI sends predictions, health checks and the port the upload declares: TF Serving's REST routes.
    own = vertex.own_container()
    assert (own.predict_route, own.health_route) == (f"/v1/models/{model}:predict", f"/v1/models/{model}/metadata")
    assert own.ports == (vertex.SERVING_PORT,) and own.versioned
    default = run(AIP_STORAGE_URI="gs://b/copy")
    assert f"--rest_api_port={vertex.SERVING_PORT}" in default.stdout.split()
    unset = run()
    assert unset.returncode != 0 and "AIP_STORAGE_URI: is not set" in unset.stderr


# --- 3. a job through train.py and eval.py, by simulation ------------------------------------------

# train.py as Vertex AI runs it, optionally SIGKILLed right after the end of epoch argv[1] (0-based),
# once that epoch's backup is written; argv[2:] are train.py's arguments.
KILLABLE_TRAIN = textwrap.dedent(
    """
    import os, runpy, signal, sys
    import tf_landslide
    import tensorflow as tf

    kill_epoch = int(sys.argv[1])
    if kill_epoch >= 0:
        original = tf.keras.callbacks.TensorBoard  # the last callback of an epoch

        class Killer(original):
            def on_epoch_end(self, epoch, logs=None):
                super().on_epoch_end(epoch, logs)
                if epoch == kill_epoch:
                    sys.stderr.flush()
                    os.kill(os.getpid(), signal.SIGKILL)

        tf.keras.callbacks.TensorBoard = Killer
    sys.argv = ["train.py", *sys.argv[2:]]
    runpy.run_path(os.path.join(os.environ["REPO"], "train.py"), run_name="__main__")
    """
)


def vertex_env(base_output_dir: str, cluster_spec: dict) -> dict:
    """The environment Vertex AI gives a replica of a job with a base output directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "CLUSTER_SPEC") and not k.startswith("AIP_")}
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        REPO=str(REPO),
        TF_CPP_MIN_LOG_LEVEL="2",
        # trailing slashes included, as Vertex AI sets them
        AIP_MODEL_DIR=f"{base_output_dir}/model/",
        AIP_CHECKPOINT_DIR=f"{base_output_dir}/checkpoints/",
        AIP_TENSORBOARD_LOG_DIR=f"{base_output_dir}/logs/",
        CLUSTER_SPEC=json.dumps(cluster_spec),
    )
    return env


def _vertex_env(root: Path, port: int) -> dict:
    """A one-machine job whose base output directory is <root>/out."""
    cluster = {"cluster": {"workerpool0": [f"localhost:{port}"]}, "task": {"type": "workerpool0", "index": 0}}
    return vertex_env(f"file://{root}/out", cluster)


def logged_epochs(stderr: str) -> list[int]:
    """The 1-based epochs of train.py's 'epoch i/n  loss ...' log lines (absl's format)."""
    return [int(n) for n in re.findall(r"\] epoch (\d+)/\d+  loss", stderr)]


def _run(command: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def vertex_job(tiny_cube, tmp_path_factory):
    """A 2-epoch job killed after epoch 1, run again (it resumes), then evaluated; all as Vertex AI would."""
    root = tmp_path_factory.mktemp("vertex")
    cfg = make_config(tiny_cube, root, batch_size=2)
    export.export(cfg.export)  # the records exist before the job (as on Cloud Storage)
    work = root / "workdir"  # the container's working folder: nothing may land here
    work.mkdir()
    port = free_ports(1)[0]
    env = _vertex_env(root, port)
    flags = [
        f"--cube={tiny_cube}",
        f"--records_dir=file://{root}/records",
        f"--config={cfg.export.config}",
        "--chip_size=32",
        "--backbone=resnet18",
        "--batch_size=2",
        "--epochs=2",
        "--progress=false",
    ]
    killed = _run([sys.executable, "-c", KILLABLE_TRAIN, "0", *flags], env, work)
    out = root / "out"
    after_kill = {
        "history": (out / "model" / "history.csv").read_text() if (out / "model" / "history.csv").exists() else "",
        "backup": sorted(p.name for p in (out / "checkpoints").rglob("*")) if (out / "checkpoints").exists() else [],
    }
    resumed = _run([sys.executable, "-c", KILLABLE_TRAIN, "-1", *flags], env, work)
    evaluated = _run([sys.executable, str(REPO / "eval.py"), *flags], env, work)
    return {
        "out": out,
        "work": work,
        "chief": f"localhost:{port}",
        "killed": killed,
        "after_kill": after_kill,
        "resumed": resumed,
        "evaluated": evaluated,
    }


def test_killed_job_leaves_its_backup_in_aip_checkpoint_dir(vertex_job):
    killed, after = vertex_job["killed"], vertex_job["after_kill"]
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-4000:]
    assert logged_epochs(killed.stderr) == [1]
    assert [line.split(",")[0] for line in after["history"].splitlines()[1:]] == ["0"]
    assert "chief" in after["backup"] and "plateau.json" in after["backup"]
    assert any(name.startswith("ckpt") for name in after["backup"])


def test_job_resumes_from_aip_checkpoint_dir_and_finishes(vertex_job):
    resumed, model = vertex_job["resumed"], vertex_job["out"] / "model"
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert logged_epochs(resumed.stderr) == [2]  # epoch 1 was restored, not trained again
    summary = json.loads((model / "train_summary.json").read_text())
    assert summary["epochs"] == 2
    assert [row.split(",")[0] for row in (model / "history.csv").read_text().splitlines()[1:]] == ["0", "1"]
    assert not (vertex_job["out"] / "checkpoints" / "chief").exists()  # a finished run drops its backup
    assert not (vertex_job["out"] / "checkpoints" / "plateau.json").exists()


def test_outputs_land_where_vertex_looks(vertex_job):
    out, model = vertex_job["out"], vertex_job["out"] / "model"
    for name in ("best_weights.h5", "last_weights.h5", "train_config.json", "manifest.json", "flags.txt"):
        assert (model / name).is_file(), name
    assert not (model / "backup").exists() and not (model / "logs").exists()  # those went to AIP_* folders
    events = sorted(p.relative_to(out / "logs") for p in (out / "logs").rglob("events.out.tfevents.*"))
    assert {p.parts[0] for p in events} == {"train", "validation"}, events
    assert list(vertex_job["work"].iterdir()) == []  # nothing at the default runs/model
    assert not [p for p in model.rglob("*") if ".partial" in p.name]
    saved = json.loads((model / "train_config.json").read_text())
    assert saved["model_dir"] == f"file://{out}/model/" and saved["checkpoint_dir"] == f"file://{out}/checkpoints/"
    assert json.loads(saved["cluster"]) == {  # CLUSTER_SPEC, translated for TensorFlow
        "cluster": {"chief": [vertex_job["chief"]]},
        "task": {"type": "chief", "index": 0},
    }
    flags_txt = (model / "flags.txt").read_text().splitlines()
    assert f"--model_dir=file://{out}/model/" in flags_txt and "--export_savedmodel=true" in flags_txt


def test_savedmodel_sits_directly_in_aip_model_dir_and_serves(vertex_job):
    model = vertex_job["out"] / "model"
    assert (model / serving.SAVED_MODEL_PB).is_file() and (model / "variables").is_dir()
    provenance = json.loads((model / serving.ASSETS_EXTRA / serving.PROVENANCE_FILE).read_text())
    assert provenance["version"] is None and provenance["checkpoint"] == "best"
    loaded = tf.saved_model.load(f"file://{model}")  # TensorFlow reads the URL itself
    probability = loaded.signatures[serving.SERVING_DEFAULT](channels=tf.zeros([1, 32, 32, 8]))["probability"]
    assert probability.shape == (1, 32, 32, 1)


def test_eval_reads_aip_model_dir(vertex_job):
    evaluated = vertex_job["evaluated"]
    assert evaluated.returncode == 0, evaluated.stderr[-4000:]
    metrics = json.loads((vertex_job["out"] / "model" / "eval" / "metrics.json").read_text())
    assert metrics["model_dir"] == f"file://{vertex_job['out']}/model/" and 0 <= metrics["pr_auc"] <= 1
    assert (vertex_job["out"] / "model" / "eval" / "pr_curve.png").read_bytes()[:4] == b"\x89PNG"


# --- 4. a model folder on an fsspec file system (memory://, standing in for gs://) ---------------


def test_training_into_an_fsspec_url(tiny_cube, tmp_path, monkeypatch):
    """Everything of ours goes through storage: run files, history, weights (published complete) and the
    SavedModel (saved_model.pb uploaded last). TensorFlow's own folders stay local: it has no memory://."""
    base = f"memory://vertex-{uuid.uuid4().hex}"
    records = tmp_path / "records"
    export.export(make_config(tiny_cube, tmp_path, records=records).export)
    cfg = dataclasses.replace(
        make_config(tiny_cube, tmp_path, records=records, batch_size=2, epochs=1, model_dir=f"{base}/model/"),
        checkpoint_dir=str(tmp_path / "checkpoints"),
        tensorboard_dir=str(tmp_path / "logs"),
        savedmodel_dir=f"{base}/model/",
    )
    uploads = []
    put_file = storage.put_file
    monkeypatch.setattr(
        storage, "put_file", lambda local, path: uploads.append(storage.basename(path)) or put_file(local, path)
    )
    try:
        summary = train_lib.train(cfg)
        fs, root = fsspec.core.url_to_fs(f"{base}/model")
        names = {p[len(root) + 1 :] for p in fs.find(root)}
        assert {"best_weights.h5", "last_weights.h5", "history.csv", "train_summary.json", "saved_model.pb"} <= names
        assert "variables/variables.index" in names and not [n for n in names if "partial" in n]
        assert storage.read_json(f"{base}/model/train_summary.json") == summary
        assert uploads.index("saved_model.pb") == len(uploads) - 1  # after every other SavedModel file
        assert uploads.index("variables.index") < uploads.index("saved_model.pb")
        model = model_folder.load_trained_model(f"{base}/model/", "last")  # weights downloaded to a local file
        assert model.predict(np.zeros((1, 32, 32, 8), np.float32), verbose=0).shape == (1, 32, 32, 1)
        assert train_lib.train(cfg) == summary  # finished: recognised from the URL, SavedModel kept
        assert uploads.count("saved_model.pb") == 1
    finally:
        storage.remove_tree(base)


# --- 5. the job configs of vertex/, run as Vertex AI runs them (local paths) -----------------------

# One replica of a job, as the container runs it: argv[1] is the machine's GPU count, stood in for by
# as many logical CPUs under MirroredStrategy when the job has one machine. Across machines,
# MultiWorkerMirroredStrategy on CPU takes one device per worker, so each machine stands for one GPU.
REPLICA = textwrap.dedent(
    """
    import os, runpy, sys
    import tf_landslide
    import tensorflow as tf
    from tf_landslide import distribution

    gpus = int(sys.argv[1])
    if gpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * gpus)
        devices = [f"/cpu:{i}" for i in range(gpus)]
        distribution.make_strategy = lambda cluster: tf.distribute.MirroredStrategy(devices)
    sys.argv = ["train.py", *sys.argv[2:]]
    runpy.run_path(os.path.join(os.environ["REPO"], "train.py"), run_name="__main__")
    """
)
# What shrinks a job to the tiny cube, appended to the job's own arguments (the last value of a flag wins).
LOCAL_SIZE = ["--chip_size=32", "--backbone=resnet18", "--epochs=1"]


def job_spec(preset: str, bucket: Path) -> dict:
    """vertex/<preset>.yaml with ``bucket`` for gs://BUCKET/."""
    return yaml.safe_load((REPO / "vertex" / f"{preset}.yaml").read_text().replace("gs://BUCKET/", f"file://{bucket}/"))


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """The 'Cloud Storage bucket' of the jobs, holding the records of the job configs' flagfile exported
    from a tiny cube with enough acquisitions for it, as the README's step 2 makes them."""
    root = tmp_path_factory.mktemp("bucket")
    spec = dataclasses.replace(synthetic.SIZES["tiny"], timesteps_per_orbit=8)
    cube = synthetic.write_cube(spec, root / "cube.zarr")
    (args,) = {tuple(pool["containerSpec"]["args"]) for pool in job_spec("single_gpu", root)["workerPoolSpecs"]}
    flagfile, records = [a for a in args if a.startswith(("--flagfile=", "--records_dir="))]
    command = [
        sys.executable,
        "-m",
        "export",
        flagfile,
        records,
        f"--cube={cube}",
        "--chip_size=32",
        "--progress=false",
    ]
    exported = _run(command, _vertex_env(root, 0), REPO)
    assert exported.returncode == 0, exported.stderr[-4000:]
    return root


def run_job(preset: str, bucket: Path, root: Path) -> dict:
    """Every replica of every pool of vertex/<preset>.yaml, started at once with the pool's container
    args and the CLUSTER_SPEC and AIP_* variables Vertex AI would give it, in a working folder that
    holds the image's configs/ only; gs://BUCKET/ is ``bucket``."""
    spec = job_spec(preset, bucket)
    pools = spec["workerPoolSpecs"]
    ports = iter(free_ports(sum(pool["replicaCount"] for pool in pools)))
    hosts = {
        f"workerpool{i}": [f"localhost:{next(ports)}" for _ in range(pool["replicaCount"])]
        for i, pool in enumerate(pools)
    }
    machines = sum(pool["replicaCount"] for pool in pools)
    gpus = pools[0]["machineSpec"]["acceleratorCount"] if machines == 1 else 1
    replicas = gpus * machines
    work = root / "workdir"
    work.mkdir()
    (work / "configs").symlink_to(REPO / "configs")
    base = spec["baseOutputDirectory"]["outputUriPrefix"].replace("JOB", root.name)
    processes = []
    try:
        for pool_index, pool in enumerate(pools):
            args = [*pool["containerSpec"]["args"], *LOCAL_SIZE, f"--batch_size={replicas}"]
            for task in range(pool["replicaCount"]):
                cluster = {
                    "cluster": hosts,
                    "environment": "cloud",
                    "task": {"type": f"workerpool{pool_index}", "index": task},
                }
                scratch = root / f"scratch-{pool_index}-{task}"  # the replica's own temporary folder
                scratch.mkdir()
                env = {**vertex_env(base, cluster), "TMPDIR": str(scratch)}
                log = open(root / f"workerpool{pool_index}-{task}.log", "w")
                process = subprocess.Popen(
                    [sys.executable, "-c", REPLICA, str(gpus), *args], cwd=work, env=env, stdout=log, stderr=log
                )
                process.log_file = log
                processes.append(process)
    finally:
        outputs = finish_runners(processes, TIMEOUT)
    return {
        "pools": pools,
        "codes": [p.returncode for p in processes],
        "outputs": outputs,
        "model": Path(base.removeprefix("file://")) / "model",
        "work": work,
        "scratch": sorted(root.glob("scratch-*")),
        "replicas": replicas,
        "machines": machines,
    }


@pytest.mark.parametrize("preset", sorted(vertex.PRESETS))
def test_job_config_command_lines_train_with_mixed_precision_and_export_the_savedmodel(preset, bucket, tmp_path):
    job = run_job(preset, bucket, tmp_path)
    images = {pool["containerSpec"]["imageUri"] for pool in job["pools"]}
    assert len(images) == 1 and len({tuple(pool["containerSpec"]["args"]) for pool in job["pools"]}) == 1
    assert "--mixed_precision" in job["pools"][0]["containerSpec"]["args"]
    for code, output in zip(job["codes"], job["outputs"], strict=True):
        assert code == 0, output[-4000:]
        expected = f"{job['replicas']} replica(s) over {job['machines']} worker(s), global batch {job['replicas']}"
        assert expected in output, output[-4000:]
        assert logged_epochs(output) == [1]
    model = job["model"]
    (row,) = list(csv.DictReader((model / "history.csv").open()))
    assert np.isfinite(float(row["loss"])) and 0 <= float(row["val_pr_auc"]) <= 1
    assert json.loads((model / "train_config.json").read_text())["mixed_precision"] is True
    loaded = tf.saved_model.load(str(model))
    probability = loaded.signatures[serving.SERVING_DEFAULT](channels=tf.zeros([1, 32, 32, 8]))[serving.OUTPUT]
    assert probability.dtype == tf.float32 and probability.shape == (1, 32, 32, 1)
    assert [p.name for p in job["work"].iterdir()] == ["configs"]  # everything went to the bucket
    # The run's files, once: the other workers wrote theirs to scratch folders, and removed them.
    assert {"best_weights.h5", "last_weights.h5", "manifest.json", "train_summary.json", "flags.txt"} <= {
        p.name for p in model.iterdir()
    }
    assert not [p for p in model.rglob("*") if "workertemp" in p.name or ".partial" in p.name]
    assert all(not list(scratch.glob("worker-*")) for scratch in job["scratch"])
