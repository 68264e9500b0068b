"""Submit a training job to Vertex AI (needs google-cloud-aiplatform: pip install -e ".[vertex]").

    python vertex/submit.py --project=PROJECT --region=REGION --image=IMAGE_URI \
        --base_output_dir=gs://BUCKET/runs/JOB [--preset=single_gpu|multi_gpu|multi_worker] [--sync] \
        -- --flagfile=configs/vv_vh_dem_t4.flags --records_dir=gs://BUCKET/records

Everything after `--` is passed to train.py in the container (default: the job configs' arguments).
The job's AIP_MODEL_DIR, AIP_CHECKPOINT_DIR and AIP_TENSORBOARD_LOG_DIR are <base_output_dir>/model,
/checkpoints and /logs.
"""

import sys

from absl import app, flags, logging

from tf_landslide import vertex

flags.DEFINE_string("project", None, "Google Cloud project.")
flags.DEFINE_string("region", "us-central1", "Vertex AI region (the bucket's region).")
flags.DEFINE_string("image", None, "Training image URI (built from vertex/Dockerfile).")
flags.DEFINE_string("base_output_dir", None, "gs:// folder of the job's outputs (model, checkpoints, logs).")
flags.DEFINE_enum("preset", "single_gpu", list(vertex.PRESETS), "Machines and GPUs (see tf_landslide/vertex.py).")
flags.DEFINE_string("display_name", "tf-landslide-train", "Job name in the console.")
flags.DEFINE_string("service_account", None, "Service account the job runs as (needed with --tensorboard).")
flags.DEFINE_string("tensorboard", None, "Vertex AI TensorBoard resource to stream the logs to.")
flags.DEFINE_bool("sync", False, "Wait for the job to finish.")
FLAGS = flags.FLAGS


def main(argv):
    missing = [name for name in ("project", "image", "base_output_dir") if not FLAGS[name].value]
    if missing:
        logging.error("missing %s", ", ".join(f"--{name}" for name in missing))
        sys.exit(2)
    args = argv[1:] or vertex.default_args() + vertex.PRESET_ARGS.get(FLAGS.preset, [])
    try:
        job = vertex.submit(
            FLAGS.image,
            args,
            FLAGS.base_output_dir,
            FLAGS.project,
            FLAGS.region,
            vertex.PRESETS[FLAGS.preset],
            display_name=FLAGS.display_name,
            service_account=FLAGS.service_account,
            tensorboard=FLAGS.tensorboard,
            sync=FLAGS.sync,
        )
    except (ImportError, ValueError) as error:
        logging.error("%s", error)
        sys.exit(2)
    print(job.resource_name)


if __name__ == "__main__":
    app.run(main)
