"""A model card for a trained and evaluated run (``<model_dir>/eval/model_card.md``), written by
eval.py beside metrics.json from what the model folder holds: what a reader needs to decide
whether to trust a map made with the model.

The sections follow Mitchell et al., "Model Cards for Model Reporting" (2019), cut to what this
system knows about itself: model, data, training, evaluation, operating threshold, intended use
and known limitations.
"""

from __future__ import annotations

from tf_landslide import model_folder, storage

CARD = "model_card.md"

# The limits the suite documents as strict expected failures (README, "Known limitations").
TRAINING_LIMITS = (
    "With several replicas, `val_loss` counts the zero-weight padding of the last validation batch.",
    "With several replicas, validation uses each replica's own BatchNorm statistics, so the best "
    "checkpoint is chosen by models that are never saved (eval.py scores the saved weights).",
    "A run killed between its history row and its backup can lower the learning rate one epoch early.",
)


def write(model_dir: str, metrics: dict, out: str) -> str:
    """Write the card of the run in ``model_dir`` evaluated as ``metrics`` into ``out``; return its path."""
    manifest = model_folder.read_manifest(model_dir)
    train_config = model_folder.read_train_config(model_dir)
    summary = model_folder.read_summary(model_dir) or {}
    threshold = model_folder.read_threshold(model_dir)
    sections = [
        _header(manifest, train_config),
        _data(manifest),
        _training(model_dir, train_config, summary),
        _evaluation(metrics, manifest),
        _threshold(metrics, threshold),
        _use_and_limits(manifest, train_config),
    ]
    path = storage.join(out, CARD)
    storage.write_text(path, "\n\n".join(sections) + "\n")
    return path


def _header(manifest: dict, train_config: dict) -> str:
    model = train_config["model"]
    return (
        f"# Model card: {model['arch']} / {model['backbone']} on {manifest['config']['name']}\n\n"
        f"Landslide segmentation from Sentinel-1 SAR (tf_landslide): per pixel, the probability of a "
        f"landslide caused by the event, from the channels {', '.join(f'`{c}`' for c in manifest['channels'])} "
        f"of {manifest['chip_size']} x {manifest['chip_size']} px chips at the cube's resolution."
    )


def _data(manifest: dict) -> str:
    cube, event, acquisitions = manifest["cube"], manifest["event"], manifest["acquisitions"]
    rows = "\n".join(
        f"| {split} | {info['chips']} | {info['positive_fraction']:.3f} |" for split, info in manifest["splits"].items()
    )
    times = {side: ", ".join(a["time"][:16] for a in acquisitions[side]) for side in ("before", "after")}
    return (
        "## Data\n\n"
        f"- Cube: `{cube['location']}` ({cube['sizes'].get('y')} x {cube['sizes'].get('x')} px, "
        f"{cube['sizes'].get('timestep')} acquisitions)\n"
        f"- Event: {event['name']}, {event['start']} .. {event['end']}; orbit: {manifest['orbit']}\n"
        f"- Acquisitions averaged before the event: {times['before']}\n"
        f"- Acquisitions averaged after the event: {times['after']}\n"
        f"- Chips: {_split_text(manifest['settings'].get('split', {}))}; normalisation from "
        f"{manifest['normalisation']['source']}\n\n"
        "| split | chips | landslide pixel fraction |\n| --- | --- | --- |\n" + rows
    )


def _split_text(split: dict) -> str:
    if not split:
        return "split as the manifest says"
    fractions = "/".join(f"{f:g}" for f in split.get("fractions", ()))
    return f"{split.get('method', '?')} split {fractions} (seed {split.get('seed', '?')})"


def _training(model_dir: str, train_config: dict, summary: dict) -> str:
    model = train_config["model"]
    recipe = (
        f"Adam (learning rate {train_config['learning_rate']:g}, weight decay {train_config['weight_decay']:g} "
        f"as {train_config['weight_decay_mode']}), plateau schedule (factor {train_config['lr_factor']:g}, "
        f"patience {train_config['lr_patience']}), batch {train_config['input']['batch_size']}, "
        f"{train_config['epochs']} epochs, encoder weights {model.get('encoder_weights') or 'none (from scratch)'}"
    )
    done = (
        f"Trained {summary['epochs']} epochs; best validation PR-AUC (Keras' approximation) "
        f"{summary['best_val_pr_auc_keras_approx']:.4f} at epoch {summary['best_epoch']}."
        if summary
        else "The run has not finished."
    )
    flags = [name for name in ("mixed_precision", "jit_compile") if train_config.get(name)]
    if summary and summary.get("compute_policy", "float32") != "float32":
        flags.append(f"{summary['compute_policy']} compute")
    return (
        "## Training\n\n"
        f"- Recipe: {recipe}" + (f"; {', '.join(flags)}" if flags else "") + "\n"
        f"- {done}\n- Reproduce: `python train.py --flagfile={model_folder.path(model_dir, model_folder.FLAGS)}`"
    )


def _evaluation(metrics: dict, manifest: dict) -> str:
    return (
        "## Evaluation\n\n"
        f"On the {metrics['split']} split ({metrics['chips']} chips, {metrics['pixels']:,} pixels, checkpoint "
        f"`{metrics['checkpoint']}`), exact over every pixel:\n\n"
        "| metric | value |\n| --- | --- |\n"
        f"| PR-AUC (average precision) | {metrics['pr_auc']:.4f} |\n"
        f"| baseline (landslide pixel fraction: a random score's PR-AUC) | {metrics['positive_fraction']:.4f} |\n"
        f"| ROC-AUC | {metrics['roc_auc']:.4f} |\n"
        f"| best F1 on this split (at {metrics['best_f1_threshold']:.3f}) | {metrics['best_f1']:.3f} |\n"
        f"| precision / recall / IoU at the operating threshold {metrics['threshold']:.3f} | "
        f"{metrics['precision']:.3f} / {metrics['recall']:.3f} / {metrics['iou']:.3f} |\n\n"
        "![precision-recall curve](pr_curve.png)\n\n![predicted and mapped chips](predictions.png)"
    )


def _threshold(metrics: dict, threshold: dict | None) -> str:
    if threshold is None or threshold.get("rule") == "default":
        why = threshold.get("note", "") if threshold else "the run chose none"
        chosen = f"{model_folder.DEFAULT_THRESHOLD:g}, the default ({why})"
    else:
        chosen = (
            f"{threshold['threshold']:.3f}, chosen by `{threshold['rule']}` on the {threshold['split']} split "
            f"(precision {threshold['precision']:.3f}, recall {threshold['recall']:.3f} there)"
        )
    return (
        "## Operating threshold\n\n"
        f"Maps and polygons call a pixel a landslide at probability >= {chosen}. This evaluation used "
        f"{metrics['threshold']:.3f}, from {metrics['threshold_source']}. The SavedModel's "
        "`assets.extra/tf_landslide.json` carries it; `--threshold` overrides it."
    )


def _use_and_limits(manifest: dict, train_config: dict) -> str:
    limits = [
        "Probabilities are not calibrated across events: on another cube (another place, season, sensor "
        "geometry or calibration) the best threshold moves; check a map's quick-look before trusting its polygons.",
        "Channels are standardised with the training cube's statistics: backscatter calibrated differently "
        "shows as change.",
        f"Trained on one event ({manifest['event']['name']}) and one orbit ({manifest['orbit']}); "
        "landslides unlike those of its inventory (size, land cover, trigger) may be missed.",
        "The labels are the inventory's polygons rasterised: its omissions count as false alarms here.",
    ]
    return (
        "## Intended use\n\n"
        "Rapid mapping of landslides after a trigger (earthquake, storm) from Sentinel-1 RTC backscatter "
        "(and the DEM when the configuration has it), to point responders and analysts at where to look; "
        "not a substitute for an inventory mapped from optical imagery or in the field.\n\n"
        "## Known limitations\n\n"
        + "\n".join(f"- {limit}" for limit in limits)
        + "\n- Training, as the test suite documents with expected failures:\n"
        + "\n".join(f"  - {limit}" for limit in TRAINING_LIMITS)
    )
