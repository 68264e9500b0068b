"""Run the paper's study (or a part of it): export, train and evaluate each configuration,
then write results.csv, results.md and figure4.png.

    tf-landslide study --study_dir=runs/study [--configs=vv_t1,vv_t4] [--epochs=N] [any train/export flag]
    python study.py --study_dir=runs/study ...   (from the repository)

Flags other than --configs and --study_dir are passed on to every configuration's train and eval.
"""

import sys

from absl import app, flags, logging

from tf_landslide import cli, study
from tf_landslide import flags as landslide_flags
from tf_landslide.cube.channels import study_configs

flags.DEFINE_list("configs", list(study_configs()), "Configurations to run (default: all 17 of the study).")
flags.DEFINE_string("study_dir", "runs/study", "Folder of the study: one model folder per configuration + results.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    forwarded = [f.serialize() for f in FLAGS.get_flags_for_module(landslide_flags.__name__) if f.present]
    forwarded = [f for f in forwarded if not f.startswith(("--config=", "--model_dir="))]
    try:
        rows = study.run_study(FLAGS.configs, FLAGS.study_dir, forwarded)
    except ValueError as error:
        logging.error("%s", error)
        sys.exit(2)
    failed = [r["config"] for r in rows if r["status"] != "ok"]
    logging.info(
        "study written to %s (%d configurations, %d failed: %s)", FLAGS.study_dir, len(rows), len(failed), failed
    )
    sys.exit(1 if failed else 0)


def run(argv=None):
    cli.run_command(main, argv, __doc__)
