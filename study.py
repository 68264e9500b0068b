"""Run the paper's study: ``python study.py --study_dir=runs/study [--configs=vv_t1,vv_t4]``.

The command is ``tf_landslide/cli/study.py`` (installed: ``tf-landslide study``); ``--help`` prints its usage.
"""

from tf_landslide.cli import study

if __name__ == "__main__":
    study.run()
