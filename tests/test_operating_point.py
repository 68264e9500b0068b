"""The run's operating threshold: chosen on the validation split after training, stored in the model
folder, used by evaluation and maps unless --threshold is given, carried by the SavedModel."""

import dataclasses
import json

import pytest

from tf_landslide import data, evaluate, model_folder, operating_point
from tf_landslide.config import EvalConfig
from tf_landslide.metrics import PixelCurve


def validation_curve(cfg) -> PixelCurve:
    manifest, folder = data.load_manifest(cfg.export.records_dir, cfg.export.config)
    model = model_folder.load_trained_model(cfg.model_dir, "best")
    curve = PixelCurve()
    for image, label in data.make_dataset(manifest, folder, "val", cfg.input, training=False):
        curve.update(model(image, training=False).numpy(), label.numpy())
    return curve


def test_training_chooses_the_best_f1_threshold_of_the_validation_split(trained):
    cfg, _ = trained
    chosen = model_folder.read_threshold(cfg.model_dir)
    assert chosen["rule"] == chosen["asked"] == "best_f1" and chosen["split"] == "val"
    assert chosen["threshold"] == pytest.approx(validation_curve(cfg).operating_point("best_f1")["threshold"])
    assert model_folder.operating_threshold(cfg.model_dir, None) == (
        chosen["threshold"],
        "the run's (best_f1 on the val split)",
    )
    assert model_folder.operating_threshold(cfg.model_dir, 0.7) == (0.7, "--threshold")


def test_another_rule_on_a_finished_run_is_chosen_again_without_training(trained, tmp_path):
    from tf_landslide import train_lib

    cfg, _ = trained
    before = model_folder.read_threshold(cfg.model_dir)
    try:
        train_lib.train(dataclasses.replace(cfg, threshold_rule="recall:0.9"))
        chosen = model_folder.read_threshold(cfg.model_dir)
        assert chosen["asked"] == chosen["rule"] == "recall:0.9"
        expected = validation_curve(cfg).operating_point("recall:0.9")
        assert chosen["threshold"] == pytest.approx(expected["threshold"]) and chosen["recall"] >= 0.9
    finally:
        model_folder.write_threshold(cfg.model_dir, before)  # the session's run, as the other tests expect it


def test_evaluation_reports_at_the_runs_threshold_unless_one_is_given(trained):
    cfg, _ = trained
    run_threshold = model_folder.read_threshold(cfg.model_dir)["threshold"]
    base = EvalConfig(export=cfg.export, input=cfg.input, model_dir=cfg.model_dir, panel_chips=1)
    metrics = evaluate.evaluate(base)
    assert metrics["threshold"] == run_threshold and metrics["threshold_source"].startswith("the run's")
    metrics = evaluate.evaluate(dataclasses.replace(base, threshold=0.25))
    assert metrics["threshold"] == 0.25 and metrics["threshold_source"] == "--threshold"


def test_a_split_without_landslides_falls_back_to_the_default_and_says_why(trained, tmp_path):
    cfg, _ = trained
    manifest, folder = data.load_manifest(cfg.export.records_dir, cfg.export.config)
    empty = json.loads(json.dumps(manifest))
    empty["splits"]["val"]["chips"] = 0
    chosen = operating_point.choose(str(tmp_path), empty, folder, cfg.input, "best_f1")
    assert chosen["threshold"] == model_folder.DEFAULT_THRESHOLD and chosen["rule"] == "default"
    assert "no val chips" in chosen["note"] and model_folder.read_threshold(tmp_path) == chosen


def test_a_run_from_before_thresholds_maps_at_the_default(tmp_path):
    assert model_folder.operating_threshold(tmp_path, None) == (0.5, "the default 0.5 (the run chose none)")
