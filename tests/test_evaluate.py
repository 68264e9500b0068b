"""Evaluation: the reported PR-AUC is sklearn's on the model's own test predictions."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from tests.helpers import tiny_export_config
from tf_landslide import data, evaluate, model_folder, train_lib
from tf_landslide.config import EvalConfig, InputConfig, ModelConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tiny_cube, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    cfg = TrainConfig(
        export=tiny_export_config(tiny_cube, root / "records"),
        input=InputConfig(batch_size=4),
        model=ModelConfig(backbone="resnet18"),
        model_dir=str(root / "model"),
        epochs=2,
    )
    train_lib.train(cfg)
    return cfg


def test_metrics_equal_sklearn_on_the_models_predictions(trained):
    cfg = EvalConfig(export=trained.export, input=trained.input, model_dir=trained.model_dir, panel_chips=3)
    metrics = evaluate.evaluate(cfg)
    manifest, folder = data.load_manifest(trained.export.records_dir, trained.export.config)
    model = model_folder.load_trained_model(trained.model_dir)
    scores, labels = [], []
    for image, label in data.make_dataset(manifest, folder, "test", trained.input, training=False):
        scores.append(model.predict_on_batch(image).ravel())
        labels.append(label.numpy().ravel())
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(labels, scores), abs=1e-6)
    assert metrics["positive_fraction"] == pytest.approx(labels.mean())
    assert metrics["chips"] == manifest["splits"]["test"]["chips"]
    out = Path(trained.model_dir) / "eval"
    assert json.loads((out / "metrics.json").read_text())["pr_auc"] == metrics["pr_auc"]
    for figure in ("pr_curve.png", "predictions.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_model_trained_on_another_export_is_refused(trained, tiny_cube, tmp_path):
    other = dataclasses.replace(
        trained.export, records_dir=str(tmp_path), split=dataclasses.replace(trained.export.split, seed=1)
    )
    from tf_landslide import export

    export.export(other)
    with pytest.raises(data.DataError, match="trained on another export"):
        evaluate.evaluate(EvalConfig(export=other, model_dir=trained.model_dir))


def test_eval_cli_writes_metrics_json(trained, tiny_cube):
    command = [
        sys.executable,
        "eval.py",
        f"--cube={tiny_cube}",
        f"--records_dir={trained.export.records_dir}",
        f"--config={trained.export.config}",
        "--chip_size=32",
        f"--model_dir={trained.model_dir}",
        "--batch_size=4",
        "--checkpoint=last",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((Path(trained.model_dir) / "eval" / "metrics.json").read_text())
    assert {"pr_auc", "positive_fraction", "roc_auc", "best_f1", "iou"} <= set(metrics)
    assert metrics["checkpoint"] == "last"
    missing = subprocess.run(command[:-1] + ["--model_dir=/nonexistent"], cwd=REPO, capture_output=True, text=True)
    assert missing.returncode == 2 and "no trained model" in missing.stderr


def test_the_model_card_states_the_runs_data_recipe_metrics_threshold_and_limits(trained):
    from tf_landslide import data, model_card, model_folder

    metrics = evaluate.evaluate(EvalConfig(export=trained.export, input=trained.input, model_dir=trained.model_dir))
    eval_dir = Path(trained.model_dir) / "eval"
    card = (eval_dir / model_card.CARD).read_text()
    manifest, _ = data.load_manifest(trained.export.records_dir, trained.export.config)
    assert card.startswith("# Model card: unet / resnet18 on vv_vh_dem_t2")
    for split, info in manifest["splits"].items():
        assert f"| {split} | {info['chips']} | {info['positive_fraction']:.3f} |" in card
    assert f"| PR-AUC (average precision) | {metrics['pr_auc']:.4f} |" in card
    assert f"| {metrics['positive_fraction']:.4f} |" in card  # the baseline beside it
    threshold = model_folder.read_threshold(trained.model_dir)
    assert f"probability >= {threshold['threshold']:.3f}, chosen by `best_f1` on the val split" in card
    for image in ("pr_curve.png", "predictions.png"):
        assert f"]({image})" in card and (eval_dir / image).exists()  # links that resolve beside the card
    assert "not calibrated across events" in card and all(limit in card for limit in model_card.TRAINING_LIMITS)
    # The compute dtype the run trained in (--bfloat16=auto: bfloat16 on CPUs that have it), when not float32.
    policy = model_folder.read_summary(trained.model_dir)["compute_policy"]
    assert (f"{policy} compute" in card) == (policy != "float32")
