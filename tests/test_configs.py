"""Every flagfile parses, and the study's files are exactly what configs/generate.py writes."""

import importlib.util
from pathlib import Path

import pytest

from tf_landslide import flags as landslide_flags
from tf_landslide.cube.channels import study_configs

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _generator():
    spec = importlib.util.spec_from_file_location("generate", CONFIGS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_17_study_flagfiles_are_generated_and_differ_only_in_config():
    generate = _generator()
    for name in study_configs():
        text = (CONFIGS / f"{name}.flags").read_text()
        assert text == generate.study_flagfile(name), f"configs/{name}.flags is stale: run python configs/generate.py"
    assert len(study_configs()) == 17


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.flags")), ids=lambda p: p.name)
def test_every_flagfile_parses_into_train_and_eval_configs(path):
    try:
        landslide_flags.FLAGS(["prog", f"--flagfile={path}"])  # unknown or misspelt flags fail here
        cfg = landslide_flags.train_config()
        evaluation = landslide_flags.eval_config()
    finally:
        landslide_flags.FLAGS.unparse_flags()
    if path.stem in study_configs():
        assert cfg.export.config == path.stem
        assert (cfg.model.arch, cfg.model.backbone, cfg.learning_rate, cfg.weight_decay) == (
            "unet",
            "resnet50",
            0.01,
            1e-4,
        )
    assert cfg.export.chip_size % 32 == 0
    assert evaluation.export == cfg.export
