"""Upload a trained SavedModel to Vertex AI as a Model (needs google-cloud-aiplatform: pip install -e ".[vertex]").

    # Vertex AI's prebuilt TensorFlow container: serving_default, the SavedModel training wrote
    python vertex/upload.py --project=PROJECT --region=REGION --artifact_uri=gs://BUCKET/runs/JOB/model/

    # Our container (vertex/Dockerfile.serving): both signatures, an export_savedmodel.py --export_dir folder
    python vertex/upload.py --project=PROJECT --region=REGION --container=own \
        --image=REGION-docker.pkg.dev/PROJECT/tf-landslide/serving:latest --artifact_uri=gs://BUCKET/runs/JOB/serving/

--dry_run prints the equivalent `gcloud ai models upload` command instead (no SDK needed). The Model's
resource name is printed; deploy it to an endpoint as the README says ("Running on Vertex AI", step 6).
"""

import shlex
import sys

from absl import app, flags, logging

from tf_landslide import vertex

CONTAINERS = ("prebuilt", "prebuilt_gpu", "own")
flags.DEFINE_string("project", None, "Google Cloud project.")
flags.DEFINE_string("region", "us-central1", "Vertex AI region (the bucket's region).")
flags.DEFINE_string("artifact_uri", None, "gs:// folder of the SavedModel (see the examples above).")
flags.DEFINE_enum("container", "prebuilt", CONTAINERS, "Vertex AI's TensorFlow 2.15 container (CPU or GPU), or ours.")
flags.DEFINE_string("image", vertex.SERVING_IMAGE_PLACEHOLDER, "Our serving image (with --container=own).")
flags.DEFINE_string("registry", "us", "Where the prebuilt image comes from: us, europe or asia.")
flags.DEFINE_string("display_name", "tf-landslide", "Model name in the console.")
flags.DEFINE_bool("dry_run", False, "Print the gcloud command instead of uploading.")
FLAGS = flags.FLAGS


def container() -> vertex.ServingContainer:
    if FLAGS.container == "own":
        return vertex.own_container(FLAGS.image)
    return vertex.prebuilt_container(gpu=FLAGS.container == "prebuilt_gpu", registry=FLAGS.registry)


def main(argv):
    del argv
    missing = [name for name in ("artifact_uri",) + (() if FLAGS.dry_run else ("project",)) if not FLAGS[name].value]
    if missing:
        logging.error("missing %s", ", ".join(f"--{name}" for name in missing))
        sys.exit(2)
    try:
        if FLAGS.dry_run:
            print(shlex.join(vertex.upload_command(FLAGS.artifact_uri, container(), FLAGS.display_name, FLAGS.region)))
            return
        model = vertex.upload_model(
            FLAGS.artifact_uri, container(), FLAGS.project, FLAGS.region, display_name=FLAGS.display_name
        )
    except (ImportError, ValueError) as error:
        logging.error("%s", error)
        sys.exit(2)
    print(model.resource_name)


if __name__ == "__main__":
    app.run(main)
