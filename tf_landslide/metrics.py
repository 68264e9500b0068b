"""Exact pixel-level precision-recall metrics, accumulated batch by batch.

``PixelCurve`` keeps one (positives, negatives) count per distinct score, so its memory is
bounded by the number of distinct probabilities (at most 2^30 float32 values in [0, 1]; in
practice far fewer than the pixels) and never holds images. From those counts it computes
exactly what ``sklearn.metrics.average_precision_score`` and ``roc_auc_score`` compute on the
full arrays: average precision is sum_k (R_k - R_{k-1}) P_k over distinct thresholds in
decreasing order, ties counted together. Keras' ``AUC(curve='PR')`` interpolates over a fixed
threshold grid: it serves as a training-time monitor only, never as a reported number.
"""

from __future__ import annotations

import numpy as np


class PixelCurve:
    """Streaming counts of positive and negative pixels per distinct score."""

    def __init__(self, flush_every: int = 1 << 23):
        self._scores = np.zeros(0, np.float32)
        self._positives = np.zeros(0, np.int64)
        self._negatives = np.zeros(0, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_size = 0
        self._flush_every = flush_every

    @staticmethod
    def _checked(scores, labels) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(scores, np.float32).ravel()
        labels = np.asarray(labels).ravel() > 0.5
        if scores.shape != labels.shape:
            raise ValueError(f"{scores.size} scores but {labels.size} labels")
        if np.isnan(scores).any():
            raise ValueError("scores contain NaN: the model diverged or its input holds NaN")
        return scores, labels

    def update(self, scores, labels) -> None:
        """Add a batch: ``scores`` probabilities, ``labels`` 0/1 (any matching shapes)."""
        scores, labels = self._checked(scores, labels)
        self._pending.append((scores, labels))
        self._pending_size += scores.size
        if self._pending_size >= self._flush_every:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        scores = np.concatenate([self._scores] + [s for s, _ in self._pending])
        positives = np.concatenate([self._positives] + [lab.astype(np.int64) for _, lab in self._pending])
        negatives = np.concatenate([self._negatives] + [(~lab).astype(np.int64) for _, lab in self._pending])
        unique, inverse = np.unique(scores, return_inverse=True)
        self._scores = unique
        self._positives = np.bincount(inverse, weights=positives, minlength=unique.size).astype(np.int64)
        self._negatives = np.bincount(inverse, weights=negatives, minlength=unique.size).astype(np.int64)
        self._pending, self._pending_size = [], 0

    def curve(self) -> dict:
        """Cumulative counts at each distinct threshold, highest score first."""
        self._flush()
        order = np.arange(self._scores.size)[::-1]
        tps = np.cumsum(self._positives[order])
        fps = np.cumsum(self._negatives[order])
        return {"thresholds": self._scores[order], "tps": tps, "fps": fps}

    def summary(self, threshold: float = 0.5) -> dict:
        """AP, ROC-AUC, best F1 (and its threshold), and IoU/precision/recall at ``threshold``."""
        c = self.curve()
        tps, fps = c["tps"].astype(np.float64), c["fps"].astype(np.float64)
        n_pos, n_neg = (tps[-1], fps[-1]) if tps.size else (0.0, 0.0)
        if n_pos == 0:
            raise ValueError("no positive pixel among the evaluated labels: precision-recall is undefined")
        precision = tps / (tps + fps)
        recall = tps / n_pos
        average_precision = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
        fpr = np.concatenate([[0.0], fps / n_neg]) if n_neg else np.zeros(tps.size + 1)
        tpr = np.concatenate([[0.0], recall])
        # The trapezoid rule written out: np.trapezoid needs numpy 2, np.trapz is gone from it, and the
        # package supports numpy 1.26 (as TensorFlow 2.21 does).
        roc_auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) if n_neg else float("nan")
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0.0)
        best = int(np.argmax(f1))
        # Pixels with score >= threshold are predicted landslide.
        at = np.searchsorted(-c["thresholds"], -threshold, side="right")
        tp, fp = (tps[at - 1], fps[at - 1]) if at > 0 else (0.0, 0.0)
        fn = n_pos - tp
        return {
            "pr_auc": average_precision,
            "roc_auc": roc_auc,
            "positive_fraction": float(n_pos / (n_pos + n_neg)),
            "pixels": int(n_pos + n_neg),
            "positive_pixels": int(n_pos),
            "best_f1": float(f1[best]),
            "best_f1_threshold": float(c["thresholds"][best]),
            "threshold": threshold,
            "precision": float(tp / (tp + fp)) if tp + fp else 0.0,
            "recall": float(tp / n_pos),
            "iou": float(tp / (tp + fp + fn)) if tp + fp + fn else 0.0,
        }

    def operating_point(self, rule: str = "best_f1") -> dict:
        """The threshold ``rule`` picks on this curve, with its precision, recall and F1.

        ``best_f1``: the threshold of the highest F1; ``recall:R``: the highest threshold whose
        recall is at least R (the fewest false alarms that still find that share of landslide
        pixels); ``precision:P``: the lowest threshold whose precision is at least P (the most
        landslide pixels found at that precision). Pixels scoring >= the threshold are landslide.
        """
        kind, target = parse_threshold_rule(rule)
        c = self.curve()
        tps, fps = c["tps"].astype(np.float64), c["fps"].astype(np.float64)
        if not tps.size or tps[-1] == 0:
            raise ValueError("no positive pixel among the evaluated labels: no threshold can be chosen")
        precision, recall = tps / (tps + fps), tps / tps[-1]
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0.0)
        if kind == "best_f1":
            at = int(np.argmax(f1))
        elif kind == "recall":
            at = int(np.argmax(recall >= target))  # thresholds fall as the index grows: the first is the highest
        else:
            reaching = np.flatnonzero(precision >= target)
            if not reaching.size:
                raise ValueError(f"no threshold reaches precision {target:g} (the best is {precision.max():.3f})")
            at = int(reaching[-1])
        return {
            "threshold": float(c["thresholds"][at]),
            "rule": rule,
            "precision": float(precision[at]),
            "recall": float(recall[at]),
            "f1": float(f1[at]),
        }

    def pr_points(self) -> tuple[np.ndarray, np.ndarray]:
        """(recall, precision) at every distinct threshold, for plotting."""
        c = self.curve()
        tps, fps = c["tps"].astype(np.float64), c["fps"].astype(np.float64)
        return tps / max(tps[-1], 1.0), tps / np.maximum(tps + fps, 1.0)


class BinnedPixelCurve(PixelCurve):
    """The same curve over probabilities rounded to multiples of 1/``bins``: fixed memory and no
    sort, for whole scenes whose distinct scores would grow with their size (at 2**20 bins the
    average precision moves by about 1e-6)."""

    def __init__(self, bins: int = 1 << 20):
        super().__init__()
        self._bins = bins
        self._positive_counts = np.zeros(bins + 1, np.int64)
        self._negative_counts = np.zeros(bins + 1, np.int64)

    def update(self, scores, labels) -> None:
        scores, labels = self._checked(scores, labels)
        index = np.rint(np.clip(scores, 0.0, 1.0) * self._bins).astype(np.int64)
        self._positive_counts += np.bincount(index[labels], minlength=self._bins + 1)
        self._negative_counts += np.bincount(index[~labels], minlength=self._bins + 1)

    def _flush(self) -> None:
        seen = np.flatnonzero(self._positive_counts + self._negative_counts)
        self._scores = (seen / self._bins).astype(np.float32)
        self._positives, self._negatives = self._positive_counts[seen], self._negative_counts[seen]


THRESHOLD_RULES = ("best_f1", "recall:R", "precision:P")


def parse_threshold_rule(rule: str) -> tuple[str, float]:
    """``best_f1``, ``recall:0.8`` or ``precision:0.8`` as (kind, target); ValueError names the forms."""
    kind, _, value = rule.partition(":")
    if kind == "best_f1" and not value:
        return kind, 0.0
    if kind in ("recall", "precision"):
        try:
            target = float(value)
        except ValueError:
            target = -1.0
        if 0.0 < target <= 1.0:
            return kind, target
    raise ValueError(f"threshold rule {rule!r}: give best_f1, recall:R or precision:P with 0 < R, P <= 1")
