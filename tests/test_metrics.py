"""Exact streaming metrics against sklearn on the full arrays."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from tf_landslide.metrics import PixelCurve


def _scores(seed, n=60_000, ties=False):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.09
    scores = np.clip(rng.normal(0.3 + 0.25 * labels, 0.2), 0, 1).astype(np.float32)
    if ties:
        scores = np.round(scores, 2).astype(np.float32)
    return scores, labels


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("flush_every", [1_000, 1 << 23])
def test_average_precision_and_roc_auc_equal_sklearn(ties, flush_every):
    scores, labels = _scores(1, ties=ties)
    curve = PixelCurve(flush_every=flush_every)
    for s, y in zip(np.array_split(scores, 12), np.array_split(labels, 12), strict=True):
        curve.update(s.reshape(-1, 10, 1), y.reshape(-1, 10, 1))  # shapes of batches of chips
    result = curve.summary()
    assert result["pr_auc"] == pytest.approx(average_precision_score(labels, scores), abs=1e-6)
    assert result["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert result["positive_fraction"] == pytest.approx(labels.mean())
    assert result["pixels"] == labels.size


def test_best_f1_and_threshold_metrics_equal_brute_force():
    scores, labels = _scores(2, n=5_000, ties=True)
    curve = PixelCurve()
    curve.update(scores, labels)
    result = curve.summary(threshold=0.4)
    candidates = np.unique(scores)
    f1s = [f1_score(labels, scores >= t) for t in candidates]
    assert result["best_f1"] == pytest.approx(max(f1s), abs=1e-9)
    assert result["best_f1_threshold"] == pytest.approx(candidates[int(np.argmax(f1s))])
    predicted = scores >= 0.4
    tp = (predicted & labels).sum()
    assert result["precision"] == pytest.approx(tp / predicted.sum())
    assert result["recall"] == pytest.approx(tp / labels.sum())
    assert result["iou"] == pytest.approx(tp / (predicted | labels).sum())


def test_perfect_and_constant_predictions():
    labels = np.array([0, 0, 1, 1, 0, 1], bool)
    perfect = PixelCurve()
    perfect.update(labels.astype(np.float32), labels)
    assert perfect.summary()["pr_auc"] == 1.0
    constant = PixelCurve()
    constant.update(np.full(6, 0.5, np.float32), labels)
    assert constant.summary()["pr_auc"] == pytest.approx(0.5)  # the positive fraction


def test_bad_inputs_are_errors():
    curve = PixelCurve()
    with pytest.raises(ValueError, match="NaN"):
        curve.update(np.array([np.nan], np.float32), np.array([1]))
    with pytest.raises(ValueError, match="labels"):
        curve.update(np.zeros(3, np.float32), np.zeros(2))
    curve.update(np.zeros(3, np.float32), np.zeros(3))
    with pytest.raises(ValueError, match="no positive pixel"):
        curve.summary()


def test_binned_curve_equals_sklearn_on_the_rounded_scores_and_is_close_on_the_raw_ones():
    from tf_landslide.metrics import BinnedPixelCurve

    scores, labels = _scores(4)
    binned = BinnedPixelCurve(bins=1 << 10)
    for s, y in zip(np.array_split(scores, 7), np.array_split(labels, 7), strict=True):
        binned.update(s, y)
    rounded = np.rint(scores * (1 << 10)) / (1 << 10)
    assert binned.summary()["pr_auc"] == pytest.approx(average_precision_score(labels, rounded), abs=1e-9)
    assert binned.summary()["pr_auc"] == pytest.approx(average_precision_score(labels, scores), abs=1e-3)
    assert binned.summary()["pixels"] == labels.size


# --- the operating threshold ----------------------------------------------------------------------


def brute_force(labels, scores, rule):
    """Every distinct score as a threshold, the rule applied by its definition."""
    rows = []
    for t in np.unique(scores):
        predicted = scores >= t
        tp = np.sum(predicted & labels)
        precision, recall = tp / max(predicted.sum(), 1), tp / labels.sum()
        rows.append((float(t), precision, recall, f1_score(labels, predicted)))
    kind, _, value = rule.partition(":")
    if kind == "best_f1":
        return max(rows, key=lambda r: (r[3], -r[0]))[0]  # ties: the highest threshold, as argmax over falling ones
    if kind == "recall":
        return max(t for t, p, r, f in rows if r >= float(value))
    return min(t for t, p, r, f in rows if p >= float(value))


@pytest.mark.parametrize("rule", ["best_f1", "recall:0.9", "recall:0.5", "precision:0.6", "precision:0.3"])
def test_the_operating_point_is_the_threshold_its_rule_defines(rule):
    scores, labels = _scores(3, n=4_000, ties=True)
    curve = PixelCurve()
    curve.update(scores, labels)
    chosen = curve.operating_point(rule)
    assert chosen["threshold"] == pytest.approx(brute_force(labels, scores, rule))
    predicted = scores >= chosen["threshold"]
    assert chosen["recall"] == pytest.approx(np.sum(predicted & labels) / labels.sum())
    assert chosen["precision"] == pytest.approx(np.sum(predicted & labels) / predicted.sum())
    assert chosen["rule"] == rule


def test_best_f1_of_the_operating_point_is_the_summarys():
    scores, labels = _scores(4, n=3_000)
    curve = PixelCurve()
    curve.update(scores, labels)
    assert curve.operating_point()["threshold"] == curve.summary()["best_f1_threshold"]


@pytest.mark.parametrize("rule", ["best", "recall", "recall:0", "recall:1.5", "precision:x", "best_f1:1"])
def test_bad_rules_name_the_forms(rule):
    curve = PixelCurve()
    curve.update(np.array([0.2, 0.8], np.float32), np.array([0, 1], bool))
    with pytest.raises(ValueError, match="best_f1, recall:R or precision:P"):
        curve.operating_point(rule)


def test_a_precision_no_threshold_reaches_is_an_error_not_a_guess():
    curve = PixelCurve()
    curve.update(np.array([0.9, 0.8, 0.1], np.float32), np.array([0, 1, 0], bool))
    with pytest.raises(ValueError, match="no threshold reaches precision 0.9"):
        curve.operating_point("precision:0.9")
