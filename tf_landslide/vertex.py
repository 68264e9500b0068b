"""Vertex AI custom jobs: worker pool specs for GPU training, the job configs of ``vertex/``, and an
optional submit helper (``pip install -e ".[vertex]"`` for google-cloud-aiplatform).

The container is the image of ``vertex/Dockerfile``; its entry point is ``python train.py``, so a
pool's ``args`` are train.py's flags. Vertex AI sets ``AIP_MODEL_DIR``, ``AIP_CHECKPOINT_DIR`` and
``AIP_TENSORBOARD_LOG_DIR`` from the job's base output directory, and ``CLUSTER_SPEC`` (and
``TF_CONFIG``) naming the pools' replicas; ``tf_landslide.flags`` turns them into the run's folders.

Pool 0 is the chief (one replica), pool 1 the other workers: MultiWorkerMirroredStrategy over every
GPU of every replica, each replica running the same command.

Serving: ``model_upload_args`` / ``upload_command`` / ``upload_model`` make the trained SavedModel a
Vertex AI Model, served by a prebuilt TensorFlow container (``prebuilt_container``: the SavedModel
directly in ``<base output dir>/model/``, ``serving_default`` only) or by ours (``own_container``,
``vertex/Dockerfile.serving``: TF Serving 2.21 on its own REST routes, both signatures, numbered
versions as ``export_savedmodel.py --export_dir`` writes them). ``vertex/upload.py`` runs it.
"""

from __future__ import annotations

import dataclasses

from tf_landslide import storage
from tf_landslide.serving.contract import SAVED_MODEL_PB

# Placeholders of the job configs in vertex/ (vertex/generate.py writes them).
IMAGE_PLACEHOLDER = "REGION-docker.pkg.dev/PROJECT/tf-landslide/train:latest"
OUTPUT_PLACEHOLDER = "gs://BUCKET/runs/JOB"
RECORDS_PLACEHOLDER = "gs://BUCKET/records"
INSTALL_HINT = 'pip install -e ".[vertex]"'


@dataclasses.dataclass(frozen=True)
class Machines:
    """The machines of a job: ``replicas`` identical machines (the chief and replicas - 1 workers),
    each with ``accelerator_count`` GPUs."""

    machine_type: str = "n1-standard-8"
    accelerator_type: str = "NVIDIA_TESLA_T4"
    accelerator_count: int = 1
    replicas: int = 1
    boot_disk_gb: int = 100


# The job configs of vertex/: one GPU; one machine with four; a chief and two workers with two each.
PRESETS = {
    "single_gpu": Machines(),
    "multi_gpu": Machines(machine_type="n1-standard-32", accelerator_count=4),
    "multi_worker": Machines(machine_type="n1-standard-16", accelerator_count=2, replicas=3),
}
# train.py arguments a preset adds: the paper's global batch of 64 does not split evenly over 6 GPUs.
PRESET_ARGS = {"multi_worker": ["--batch_size=96"]}


def worker_pool_specs(image_uri: str, args: list[str], machines: Machines = Machines()) -> list[dict]:
    """The ``worker_pool_specs`` of a custom job (the REST/SDK form, snake_case): pool 0 holds the
    chief, pool 1 the ``replicas - 1`` other workers; every replica runs ``image_uri`` with ``args``."""
    if machines.replicas < 1 or machines.accelerator_count < 0:
        raise ValueError(f"{machines}: replicas must be >= 1 and accelerator_count >= 0")
    machine_spec = {"machine_type": machines.machine_type}
    if machines.accelerator_count:
        machine_spec.update(accelerator_type=machines.accelerator_type, accelerator_count=machines.accelerator_count)

    def pool(replicas: int) -> dict:
        return {
            "machine_spec": dict(machine_spec),
            "replica_count": replicas,
            "disk_spec": {"boot_disk_type": "pd-ssd", "boot_disk_size_gb": machines.boot_disk_gb},
            "container_spec": {"image_uri": image_uri, "args": list(args)},
        }

    pools = [pool(1)]
    if machines.replicas > 1:
        pools.append(pool(machines.replicas - 1))
    return pools


def _camel(value):
    if isinstance(value, dict):
        return {_camel_key(k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)


def job_spec(specs: list[dict], base_output_dir: str) -> dict:
    """A CustomJobSpec as ``gcloud ai custom-jobs create --config=FILE`` reads it (camelCase).
    ``baseOutputDirectory`` is what makes Vertex AI set the AIP_* folders."""
    return {"workerPoolSpecs": _camel(specs), "baseOutputDirectory": {"outputUriPrefix": base_output_dir}}


def default_args(flagfile: str = "configs/vv_vh_dem_t4.flags", records_dir: str = RECORDS_PLACEHOLDER) -> list[str]:
    """train.py's arguments in the job configs: a study flagfile (paper recipe), records on Cloud
    Storage, mixed precision on the GPUs. No --model_dir: it comes from AIP_MODEL_DIR."""
    return [f"--flagfile={flagfile}", f"--records_dir={records_dir}", "--mixed_precision", "--progress=false"]


def job_config_text(preset: str) -> str:
    """The YAML of ``vertex/<preset>.yaml``."""
    import yaml

    machines = PRESETS[preset]
    gpus = machines.accelerator_count * machines.replicas
    args = default_args() + PRESET_ARGS.get(preset, [])
    header = (
        f"# Vertex AI custom job: {preset.replace('_', ' ')}, {machines.replicas} machine(s) {machines.machine_type} "
        f"with {machines.accelerator_count} x {machines.accelerator_type} each ({gpus} GPU(s) in all).\n"
        f"# Generated by `python vertex/generate.py`; replace REGION, PROJECT and BUCKET, then:\n"
        f"#   gcloud ai custom-jobs create --region=REGION --display-name=landslides-{preset.replace('_', '-')} "
        f"--config=vertex/{preset}.yaml\n"
        "# The records must be on Cloud Storage first (see README, 'Running on Vertex AI').\n"
        + (
            "# Global batch 96 (16 per GPU): the paper's 64 does not split evenly over 6 GPUs.\n"
            if preset in PRESET_ARGS
            else ""
        )
    )
    spec = job_spec(worker_pool_specs(IMAGE_PLACEHOLDER, args, machines), OUTPUT_PLACEHOLDER)
    return header + yaml.safe_dump(spec, sort_keys=False, default_flow_style=False)


def submit(
    image_uri: str,
    args: list[str],
    base_output_dir: str,
    project: str,
    region: str,
    machines: Machines = Machines(),
    display_name: str = "tf-landslide-train",
    service_account: str | None = None,
    tensorboard: str | None = None,
    sync: bool = False,
):
    """Create and start the custom job with google-cloud-aiplatform; return the ``CustomJob``.

    ``base_output_dir`` (gs://...) is where Vertex AI points AIP_MODEL_DIR (``<dir>/model``),
    AIP_CHECKPOINT_DIR (``<dir>/checkpoints``) and AIP_TENSORBOARD_LOG_DIR (``<dir>/logs``).
    ``tensorboard`` is a Vertex AI TensorBoard resource name to stream the logs to (it then
    needs ``service_account``). ``sync=True`` waits for the job to finish.
    """
    try:
        from google.cloud import aiplatform
    except ImportError as error:
        raise ImportError(
            f"submitting to Vertex AI needs google-cloud-aiplatform: {INSTALL_HINT} (or use the gcloud job configs "
            f"in vertex/)"
        ) from error
    if not base_output_dir.startswith("gs://"):
        raise ValueError(f"base_output_dir must be a gs:// URL (Vertex AI writes there); got {base_output_dir!r}")
    aiplatform.init(project=project, location=region)
    job = aiplatform.CustomJob(
        display_name=display_name,
        worker_pool_specs=worker_pool_specs(image_uri, args, machines),
        base_output_dir=base_output_dir,
        project=project,
        location=region,
    )
    options = {"service_account": service_account, "tensorboard": tensorboard}
    options = {key: value for key, value in options.items() if value}
    if sync:
        job.run(sync=True, **options)
    else:
        job.submit(**options)
    return job


# --- serving: the trained SavedModel as a Vertex AI Model ------------------------------------------

# The newest of Vertex AI's prebuilt TensorFlow prediction containers ("Prebuilt containers for
# inference and explanation": TensorFlow 2.15, CPU only and GPU). They serve the `serving_default`
# signature of the SavedModel that sits directly in the artifact folder, AIP_MODEL_DIR as training
# writes it. Our TF 2.21 SavedModel holds plain TensorFlow ops and loads in TensorFlow 2.15
# (README, "Running on Vertex AI"); TensorFlow promises only the other direction.
PREBUILT_TF_VERSION = "2-15"
# Our own container (vertex/Dockerfile.serving): TF Serving of the TensorFlow that writes our
# SavedModels, answering Vertex AI on its own REST routes for this model name.
SERVING_IMAGE_PLACEHOLDER = "REGION-docker.pkg.dev/PROJECT/tf-landslide/serving:latest"
SERVING_MODEL_NAME = "landslide"
SERVING_PORT = 8080  # Vertex AI's default AIP_HTTP_PORT
PREDICT_ROUTE = f"/v1/models/{SERVING_MODEL_NAME}:predict"
# Ready once a version is loaded: the metadata route answers from the loaded servable (404 before),
# while the status route /v1/models/NAME answers 200 as soon as a version starts loading.
HEALTH_ROUTE = f"/v1/models/{SERVING_MODEL_NAME}/metadata"
# The artifact folders of the README's upload commands: what training writes, and an export of it.
MODEL_PLACEHOLDER = f"{OUTPUT_PLACEHOLDER}/model/"
EXPORT_PLACEHOLDER = f"{OUTPUT_PLACEHOLDER}/serving/"


@dataclasses.dataclass(frozen=True)
class ServingContainer:
    """How Vertex AI runs a model's container: the image, and for our own the port and routes it
    sends predictions and health checks to (empty: Vertex AI's defaults, as a prebuilt image takes).
    ``versioned``: the artifact folder holds numbered SavedModel versions (TF Serving's layout)
    rather than one SavedModel directly."""

    image_uri: str
    predict_route: str = ""
    health_route: str = ""
    ports: tuple[int, ...] = ()
    versioned: bool = False


def prebuilt_container(gpu: bool = False, registry: str = "us") -> ServingContainer:
    """Vertex AI's prebuilt TensorFlow container (``registry``: us, europe or asia)."""
    kind = "gpu" if gpu else "cpu"
    return ServingContainer(f"{registry}-docker.pkg.dev/vertex-ai/prediction/tf2-{kind}.{PREBUILT_TF_VERSION}:latest")


def own_container(image_uri: str = SERVING_IMAGE_PLACEHOLDER) -> ServingContainer:
    """The image of ``vertex/Dockerfile.serving``, with the port and TF Serving routes it answers on."""
    return ServingContainer(image_uri, PREDICT_ROUTE, HEALTH_ROUTE, (SERVING_PORT,), versioned=True)


def model_upload_args(artifact_uri: str, container: ServingContainer, display_name: str = "tf-landslide") -> dict:
    """The keyword arguments of ``aiplatform.Model.upload`` for the SavedModel in ``artifact_uri``:
    ``<base output dir>/model/`` for a prebuilt container, an ``export_savedmodel.py --export_dir``
    folder for ours."""
    if not artifact_uri.startswith("gs://"):
        raise ValueError(
            f"the artifact folder must be a gs:// URL (Vertex AI copies it from there); got {artifact_uri!r}"
        )
    args = {
        "display_name": display_name,
        "artifact_uri": artifact_uri,
        "serving_container_image_uri": container.image_uri,
    }
    if container.predict_route:
        args["serving_container_predict_route"] = container.predict_route
    if container.health_route:
        args["serving_container_health_route"] = container.health_route
    if container.ports:
        args["serving_container_ports"] = list(container.ports)
    return args


def upload_command(
    artifact_uri: str, container: ServingContainer, display_name: str = "tf-landslide", region: str = "REGION"
) -> list[str]:
    """The same upload as a ``gcloud ai models upload`` command line."""
    flags = {
        "display_name": "--display-name",
        "artifact_uri": "--artifact-uri",
        "serving_container_image_uri": "--container-image-uri",
        "serving_container_predict_route": "--container-predict-route",
        "serving_container_health_route": "--container-health-route",
        "serving_container_ports": "--container-ports",
    }
    args = model_upload_args(artifact_uri, container, display_name)
    values = {key: ",".join(map(str, value)) if isinstance(value, list) else value for key, value in args.items()}
    return ["gcloud", "ai", "models", "upload", f"--region={region}", *(f"{flags[k]}={v}" for k, v in values.items())]


def artifact_problem(artifact_uri: str, container: ServingContainer) -> str | None:
    """What is wrong with ``artifact_uri`` for ``container`` (None when nothing): a prebuilt container
    needs ``saved_model.pb`` directly in the folder, ours a numbered version folder holding one."""
    if not storage.isdir(artifact_uri):
        return f"{artifact_uri} is not a folder"
    flat = storage.exists(storage.join(artifact_uri, SAVED_MODEL_PB))
    versions = [
        name
        for name in storage.listdir(artifact_uri)
        if name.isdigit() and storage.exists(storage.join(artifact_uri, name, SAVED_MODEL_PB))
    ]
    if container.versioned and not versions:
        hint = " (it holds one directly: that is the prebuilt containers' layout)" if flat else ""
        return (
            f"{artifact_uri} has no numbered SavedModel version{hint}; our container serves TF Serving's "
            f"layout: python export_savedmodel.py --model_dir=<base output dir>/model/ --export_dir={artifact_uri}"
        )
    if not container.versioned and not flat:
        return (
            f"{artifact_uri} holds no {SAVED_MODEL_PB} directly; a prebuilt container serves the SavedModel "
            f"training writes into <base output dir>/model/ (AIP_MODEL_DIR)"
        )
    return None


def upload_model(
    artifact_uri: str,
    container: ServingContainer,
    project: str,
    region: str,
    display_name: str = "tf-landslide",
    sync: bool = True,
):
    """Upload the SavedModel in ``artifact_uri`` as a Vertex AI Model served by ``container``, with
    google-cloud-aiplatform; return the ``Model``. The folder's layout is checked first when it can
    be read (gs:// needs gcsfs, the ``gcp`` extra)."""
    args = model_upload_args(artifact_uri, container, display_name)
    try:
        from google.cloud import aiplatform
    except ImportError as error:
        raise ImportError(
            f"uploading to Vertex AI needs google-cloud-aiplatform: {INSTALL_HINT} (or run the gcloud command "
            f"`python vertex/upload.py --dry_run` prints)"
        ) from error
    try:
        problem = artifact_problem(artifact_uri, container)
    except ImportError:  # no gcsfs: Vertex AI's upload finds a wrong layout only when the model is deployed
        problem = None
    if problem:
        raise ValueError(problem)
    aiplatform.init(project=project, location=region)
    return aiplatform.Model.upload(project=project, location=region, sync=sync, **args)
