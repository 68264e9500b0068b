"""Figures: the precision-recall curve, predicted vs ground-truth chips, the study's Figure 4."""

from __future__ import annotations

import os

import numpy as np

from tf_landslide import storage


def _save(fig, path, dpi: int) -> None:
    """Save ``fig`` to ``path`` (a local path or a URL), complete or not at all, and close it."""
    try:
        with storage.local_output(path) as local:
            fig.savefig(local, dpi=dpi)
    finally:
        _pyplot().close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pr_curve(
    recall: np.ndarray, precision: np.ndarray, pr_auc: float, baseline: float, title: str, path: str | os.PathLike
) -> None:
    """Precision against recall over all test pixels, with the positive-fraction baseline."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.step(
        np.concatenate([[0.0], recall]),
        np.concatenate([[precision[0] if precision.size else 1.0], precision]),
        where="post",
        label=f"model (PR-AUC {pr_auc:.3f})",
    )
    ax.axhline(baseline, color="grey", linestyle="--", label=f"random (positive fraction {baseline:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    _save(fig, path, dpi=120)


def prediction_panel(probabilities: np.ndarray, labels: np.ndarray, title: str, path: str | os.PathLike) -> None:
    """Predicted landslide probability (top row) over ground truth (bottom row), as the
    paper's Figure 5: background purple, landslide yellow."""
    plt = _pyplot()
    n = len(probabilities)
    fig, axes = plt.subplots(2, n, figsize=(1.8 * n, 4.0), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(probabilities[i].squeeze(), vmin=0, vmax=1, cmap="viridis")
        axes[1, i].imshow(labels[i].squeeze(), vmin=0, vmax=1, cmap="viridis")
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("predicted")
    axes[1, 0].set_ylabel("ground truth")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path, dpi=110)


def study_figure(rows: list[dict], path: str | os.PathLike) -> None:
    """PR-AUC against timesteps, one line per input set, the baseline as a dashed line
    (the paper's Figure 4); the DEM-only result is a horizontal line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    groups = {"vh": "VH", "vv": "VV", "vv_vh_dem": "VV+VH+DEM", "vv_vh": "VV+VH"}
    for prefix, label in groups.items():
        points = sorted((r["timesteps"], r["pr_auc"]) for r in rows if r["config"].rsplit("_t", 1)[0] == prefix)
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    for r in rows:
        if r["config"] == "dem":
            ax.axhline(r["pr_auc"], color="brown", linestyle=":", label="DEM only")
    if rows:
        ax.axhline(
            float(np.mean([r["positive_fraction"] for r in rows])),
            color="grey",
            linestyle="--",
            label="random (positive fraction)",
        )
    ax.set(xlabel="SAR timesteps before/after the event", ylabel="test PR-AUC", xticks=[1, 2, 3, 4], ylim=(0, 1))
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 0.15), fontsize="small")  # between baseline and DEM
    fig.tight_layout()
    _save(fig, path, dpi=120)


# Where the map and the labels agree and differ, in colours told apart with the common kinds of
# colour blindness (Okabe-Ito): found, missed, and called where nothing was mapped.
OUTCOMES = {1: ("hit", "#009E73"), 2: ("miss", "#E69F00"), 3: ("false alarm", "#CC79A7")}


def outcomes(probability: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """0 (agreed background or no prediction), 1 hit, 2 miss, 3 false alarm, per pixel."""
    called = probability >= threshold  # NaN (no prediction) is never called
    mapped = labels.astype(bool)
    codes = np.zeros(probability.shape, np.uint8)
    codes[called & mapped] = 1
    codes[~called & mapped & np.isfinite(probability)] = 2
    codes[called & ~mapped] = 3
    return codes


def scene_quicklook(
    probability: np.ndarray,
    backdrop: np.ndarray | None,
    labels: np.ndarray | None,
    title: str,
    backdrop_name: str,
    threshold: float,
    path: str | os.PathLike,
) -> None:
    """A whole-scene map over a grey backdrop (the post-event VV when the model has it): where the
    cube has labels, hits, misses and false alarms at ``threshold`` in three colours with a legend;
    otherwise the probabilities, clear where low."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = _pyplot()
    height, width = probability.shape
    fig, ax = plt.subplots(figsize=(8, 8 * height / width + 0.8))
    if backdrop is not None and np.isfinite(backdrop).any():
        low, high = np.nanpercentile(backdrop, [2, 98])
        ax.imshow(backdrop, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    if labels is not None:
        codes = outcomes(probability, labels, threshold)
        colours = ListedColormap([OUTCOMES[code][1] for code in sorted(OUTCOMES)])
        ax.imshow(np.ma.masked_equal(codes, 0), cmap=colours, vmin=0.5, vmax=3.5, interpolation="nearest")
        counts = {code: int(np.sum(codes == code)) for code in OUTCOMES}
        legend = [
            Patch(color=colour, label=f"{name} ({counts[code]:,} px)") for code, (name, colour) in OUTCOMES.items()
        ]
        ax.legend(handles=legend, loc="lower right", fontsize="small", framealpha=0.85)
        subtitle = f"backdrop: {backdrop_name}; against the cube's labels"
    else:
        shown = np.ma.masked_where(~(probability >= 0.1), probability)  # NaN and low values stay clear
        image = ax.imshow(shown, cmap="inferno", vmin=0, vmax=1, alpha=0.75, interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.035, pad=0.02, label="landslide probability")
        subtitle = f"backdrop: {backdrop_name}"
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title}\n{subtitle}; landslide where probability >= {threshold:.3g}", fontsize="small")
    fig.tight_layout()
    _save(fig, path, dpi=150)
