"""The paper's input-ablation study: export, train and evaluate a list of configurations,
then tabulate PR-AUC and draw Figure 4 (PR-AUC against timesteps, one line per input set).

Each configuration runs the package's ``train`` and ``eval`` commands (``python -m tf_landslide``)
in its own process with its flagfile and the caller's overrides, so one configuration's TensorFlow
state never leaks into the next and a crash in one is reported without losing the others.
"""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tf_landslide import flagfiles, model_folder, plots, storage
from tf_landslide.cube.channels import study_configs

log = logging.getLogger("tf_landslide.study")

# The package's own command line, in this interpreter: the steps run the code the study runs.
COMMAND = (sys.executable, "-m", "tf_landslide")

COLUMNS = (
    "config",
    "channels",
    "timesteps",
    "pr_auc",
    "positive_fraction",
    "roc_auc",
    "best_f1",
    "iou",
    "test_chips",
    "epochs",
    "minutes",
    "status",
)


def run_study(
    configs: list[str], study_dir: str | Path, overrides: list[str], command: Sequence[str] = COMMAND
) -> list[dict]:
    """Train and evaluate each configuration; write results.csv, results.md and figure4.png.
    ``study_dir`` may be a URL (gs://...); each configuration's flagfile is the packaged one of
    its name, and ``command`` runs a step (``train``, ``eval``) with its flags."""
    study_dir = os.fspath(study_dir)
    unknown = [c for c in configs if c not in flagfiles.names()]
    if unknown:
        raise ValueError(f"no flagfile for {unknown} in {flagfiles.directory()}; known: {sorted(study_configs())}")
    storage.makedirs(study_dir)
    rows = []
    for config in configs:
        rows.append(_run_one(config, study_dir, overrides, command))
        write_results(rows, study_dir)
    return rows


def _run_one(config: str, study_dir: str, overrides: list[str], command: Sequence[str]) -> dict:
    model_dir = storage.join(study_dir, config)
    common = [f"--flagfile={flagfiles.path(config)}", f"--model_dir={model_dir}", *overrides]
    started = time.perf_counter()
    status = "ok"
    for step in ("train", "eval"):
        log.info("%s: %s", config, step)
        # In the caller's folder, as the steps would run by hand: the flagfiles' relative folders
        # (records/) and a relative --study_dir are found where the caller looks for them.
        done = subprocess.run([*command, step, *common])
        if done.returncode != 0:
            status = f"{step} failed (exit {done.returncode})"
            log.error("%s: %s", config, status)
            break
    spec = study_configs().get(config)
    row = {
        "config": config,
        "channels": len(spec.channels) if spec else "",
        "timesteps": spec.timesteps if spec else "",
        "minutes": round((time.perf_counter() - started) / 60, 2),
        "status": status,
    }
    metrics_path = model_folder.path(model_dir, model_folder.EVAL, model_folder.EVAL_METRICS)
    if status == "ok" and storage.exists(metrics_path):
        metrics = storage.read_json(metrics_path)
        summary = model_folder.read_summary(model_dir)
        row.update(
            {k: metrics[k] for k in ("pr_auc", "positive_fraction", "roc_auc", "best_f1", "iou")},
            test_chips=metrics["chips"],
            epochs=summary["epochs"],
        )
    return row


def write_results(rows: list[dict], study_dir: str | os.PathLike) -> None:
    with storage.open(storage.join(study_dir, "results.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [
            f"{row[c]:.3f}" if isinstance(row.get(c), float) and c != "minutes" else str(row.get(c, ""))
            for c in COLUMNS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    storage.write_text(storage.join(study_dir, "results.md"), "\n".join(lines) + "\n")
    finished = [r for r in rows if "pr_auc" in r]
    plots.study_figure(finished, storage.join(study_dir, "figure4.png"))
