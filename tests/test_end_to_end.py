"""The real path on the embedded cube: export, U-Net/ResNet-50 training, exact evaluation."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_path_learns_on_the_embedded_cube(tmp_path):
    common = [
        "--flagfile=configs/quickstart.flags",
        f"--cache_dir={tmp_path / 'cache'}",
        f"--records_dir={tmp_path / 'records'}",
        f"--model_dir={tmp_path / 'model'}",
        "--progress=false",
    ]
    # A shortened quick start: 3 epochs instead of 12 (the full run is the README's main job).
    train = subprocess.run(
        [sys.executable, "train.py", *common, "--epochs=3"], cwd=REPO, capture_output=True, text=True
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert "running the export first" in train.stderr
    evaluation = subprocess.run([sys.executable, "eval.py", *common], cwd=REPO, capture_output=True, text=True)
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    metrics = json.loads((tmp_path / "model" / "eval" / "metrics.json").read_text())
    assert metrics["config"] == "vv_vh_dem_t4" and metrics["chips"] > 5
    # Three epochs already separate landslides from background far better than chance.
    assert metrics["pr_auc"] > 2.5 * metrics["positive_fraction"], metrics
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["channels"][:4] == ["vv_before", "vv_after", "vh_before", "vh_after"]
