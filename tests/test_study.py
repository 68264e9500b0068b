"""The study runner: each configuration trained and evaluated in its own process, then tabulated."""

import csv

import pytest

from tf_landslide import study


def test_study_runs_a_configuration_end_to_end_and_tabulates_it(tiny_cube, tmp_path):
    overrides = [
        f"--cube={tiny_cube}",
        f"--records_dir={tmp_path / 'records'}",
        "--epochs=1",
        "--batch_size=4",
        "--backbone=resnet18",
        "--progress=false",
    ]
    rows = study.run_study(["smoke"], tmp_path / "study", overrides)
    assert rows[0]["status"] == "ok", rows
    with open(tmp_path / "study" / "results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert table[0]["config"] == "smoke" and 0.0 <= float(table[0]["pr_auc"]) <= 1.0
    assert float(table[0]["positive_fraction"]) > 0 and table[0]["epochs"] == "1"
    assert "| smoke |" in (tmp_path / "study" / "results.md").read_text()
    assert (tmp_path / "study" / "figure4.png").read_bytes()[:4] == b"\x89PNG"


def test_failed_configuration_is_reported_not_fatal(tmp_path):
    rows = study.run_study(["smoke"], tmp_path / "study", ["--cube=/nonexistent.zarr", "--progress=false"])
    assert rows[0]["status"].startswith("train failed")
    assert "train failed" in (tmp_path / "study" / "results.md").read_text()


def test_unknown_configuration_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no flagfile for \\['vv_t9'\\]"):
        study.run_study(["vv_t9"], tmp_path, [])


def test_figure4_has_a_line_per_input_set(tmp_path):
    rows = [
        {"config": f"{p}_t{k}", "timesteps": k, "pr_auc": 0.2 + 0.1 * k, "positive_fraction": 0.1}
        for p in ("vv", "vh", "vv_vh", "vv_vh_dem")
        for k in (1, 2, 3, 4)
    ]
    rows.append({"config": "dem", "timesteps": 0, "pr_auc": 0.17, "positive_fraction": 0.1})
    study.write_results([{**r, "status": "ok"} for r in rows], tmp_path)
    lines = (tmp_path / "results.md").read_text().splitlines()
    assert len(lines) == 2 + 17 and "| dem |" in lines[-1]
    assert (tmp_path / "figure4.png").stat().st_size > 10_000
