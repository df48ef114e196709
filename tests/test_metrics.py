"""Classification and language-model metrics, checked by hand and against a plain loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from minillm.metrics import (
    METRICS,
    TWEETEVAL_METRICS,
    best_threshold,
    classification_metrics,
    format_report,
    lm_metrics,
    predictions,
    ranked_probabilities,
    task_score,
)

LABELS = ["negative", "neutral", "positive"]


def test_hand_computed_three_classes():
    y_true = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 1, 2, 0, 2, 2, 1]
    m = classification_metrics(y_true, y_pred, LABELS)
    # confusion (rows true, cols pred):
    #   neg: 2 1 0    neu: 1 2 1    pos: 0 1 2
    assert m["confusion"] == [[2, 1, 0], [1, 2, 1], [0, 1, 2]]
    assert m["n"] == 10
    assert m["support"] == {"negative": 3, "neutral": 4, "positive": 3}
    # correct = 2 + 2 + 2 = 6 of 10
    assert m["accuracy"] == pytest.approx(0.6)
    # recall: neg 2/3, neu 2/4, pos 2/3
    r = m["per_class_recall"]
    assert r["negative"] == pytest.approx(2 / 3)
    assert r["neutral"] == pytest.approx(1 / 2)
    assert r["positive"] == pytest.approx(2 / 3)
    # precision (column sums 3, 4, 3): neg 2/3, neu 2/4, pos 2/3
    p = m["per_class_precision"]
    assert p["negative"] == pytest.approx(2 / 3)
    assert p["neutral"] == pytest.approx(1 / 2)
    assert p["positive"] == pytest.approx(2 / 3)
    # precision == recall per class, so f1 == recall per class
    assert m["per_class_f1"]["neutral"] == pytest.approx(1 / 2)
    # macro recall = (2/3 + 1/2 + 2/3) / 3 = (11/6) / 3 = 11/18
    assert m["macro_recall"] == pytest.approx(11 / 18)
    assert m["macro_f1"] == pytest.approx(11 / 18)


def test_hand_computed_asymmetric_precision_recall():
    # true:  0 0 0 0 1 1
    # pred:  0 0 1 1 1 1
    # confusion [[2, 2], [0, 2]]
    m = classification_metrics([0, 0, 0, 0, 1, 1], [0, 0, 1, 1, 1, 1], ["a", "b"])
    assert m["confusion"] == [[2, 2], [0, 2]]
    # recall a = 2/4, b = 2/2; precision a = 2/2, b = 2/4
    assert m["per_class_recall"] == pytest.approx({"a": 0.5, "b": 1.0})
    assert m["per_class_precision"] == pytest.approx({"a": 1.0, "b": 0.5})
    # f1 a = 2·1·0.5/1.5 = 2/3, and the same for b
    assert m["per_class_f1"] == pytest.approx({"a": 2 / 3, "b": 2 / 3})
    assert m["macro_recall"] == pytest.approx(0.75)
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)


def test_perfect_predictions():
    y = [0, 1, 2, 2, 1, 0, 2]
    m = classification_metrics(y, y, LABELS)
    assert m["accuracy"] == 1.0
    assert m["macro_recall"] == 1.0
    assert m["macro_f1"] == 1.0
    assert m["confusion"] == [[2, 0, 0], [0, 2, 0], [0, 0, 3]]


def test_class_never_predicted_has_zero_precision():
    # nothing is ever predicted "positive"
    y_true = [0, 1, 2, 2]
    y_pred = [0, 1, 0, 1]
    m = classification_metrics(y_true, y_pred, LABELS)
    assert m["per_class_precision"]["positive"] == 0.0
    assert m["per_class_recall"]["positive"] == 0.0
    assert m["per_class_f1"]["positive"] == 0.0
    # recall 1, 1, 0 over three supported classes
    assert m["macro_recall"] == pytest.approx(2 / 3)
    # precision neg = 1/2, neu = 1/2; f1 = 2·0.5·1/1.5 = 2/3 each; pos f1 0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_class_with_no_support_is_left_out_of_macro_averages():
    # no true "neutral" examples, but one is predicted neutral
    y_true = [0, 0, 2, 2]
    y_pred = [0, 1, 2, 2]
    m = classification_metrics(y_true, y_pred, LABELS)
    assert m["support"]["neutral"] == 0
    assert m["per_class_recall"]["neutral"] == 0.0
    assert m["per_class_precision"]["neutral"] == 0.0
    # recall neg 1/2, pos 1; neutral excluded -> (0.5 + 1) / 2
    assert m["macro_recall"] == pytest.approx(0.75)
    # f1 neg = 2·1·0.5/1.5 = 2/3, pos = 1
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)


def test_result_is_json_serialisable_and_accepts_arrays():
    y_true = np.array([0, 1, 2, 1], dtype=np.int32)
    y_pred = np.array([0, 2, 2, 1], dtype=np.int64)
    m = classification_metrics(y_true, y_pred, LABELS)
    assert json.loads(json.dumps(m)) == m
    assert m == classification_metrics(y_true.tolist(), y_pred.tolist(), LABELS)


@pytest.mark.parametrize(
    "y_true, y_pred, match",
    [
        ([0, 1], [0], "items"),
        ([], [], "empty"),
        ([0, 3], [0, 1], "outside"),
        ([0, 1], [0, -1], "outside"),
        ([0.0, 1.0], [0, 1], "integer"),
        ([[0, 1]], [[0, 1]], "1-D"),
    ],
)
def test_bad_inputs_raise(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(y_true, y_pred, LABELS)


def _loop_macro_scores(y_true, y_pred, n_classes):
    """Independent oracle: per-class counts with plain Python loops."""
    recalls, f1s = [], []
    for c in range(n_classes):
        tp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == c and p == c)
        fn = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == c and p != c)
        fp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t != c and p == c)
        if tp + fn == 0:
            continue  # no support: left out of the macro averages
        recall = tp / (tp + fn)
        precision = tp / (tp + fp) if tp + fp else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        recalls.append(recall)
        f1s.append(f1)
    return sum(recalls) / len(recalls), sum(f1s) / len(f1s)


@pytest.mark.parametrize("seed", range(8))
def test_macro_scores_match_loop_oracle(seed):
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 6))
    n = int(rng.integers(1, 60))
    y_true = rng.integers(0, n_classes, size=n).tolist()
    # mostly right, sometimes random, so scores land away from 0 and 1
    y_pred = [t if rng.random() < 0.5 else int(rng.integers(0, n_classes)) for t in y_true]
    names = [f"c{i}" for i in range(n_classes)]
    m = classification_metrics(y_true, y_pred, names)
    want_recall, want_f1 = _loop_macro_scores(y_true, y_pred, n_classes)
    assert m["macro_recall"] == pytest.approx(want_recall)
    assert m["macro_f1"] == pytest.approx(want_f1)
    assert m["accuracy"] == pytest.approx(np.mean(np.array(y_true) == np.array(y_pred)))
    assert sum(map(sum, m["confusion"])) == n


def test_format_report_lists_everything():
    m = classification_metrics([0, 0, 1, 2], [0, 1, 1, 2], LABELS)
    report = format_report(m, LABELS)
    assert "accuracy 0.7500" in report
    assert "macro-recall" in report
    assert "macro-F1" in report
    for name in LABELS:
        assert name in report
    # confusion rows line up under their headers: each row ends with its counts
    lines = report.splitlines()
    header = next(line for line in lines if line.startswith("true \\ pred"))
    rows = lines[lines.index(header) + 1 :]
    assert [row.split()[1:] for row in rows] == [["1", "1", "0"], ["0", "1", "0"], ["0", "0", "1"]]
    assert len({len(row) for row in [header, *rows]}) == 1  # all the same width


def test_ranked_probabilities_likeliest_first_from_any_sequence():
    import torch

    probs = [0.2, 0.7, 0.1]
    expected = "neutral 0.70, negative 0.20, positive 0.10"
    assert ranked_probabilities(probs, LABELS) == expected
    assert ranked_probabilities(np.array(probs), LABELS) == expected
    assert ranked_probabilities(torch.tensor(probs), LABELS) == expected
    assert ranked_probabilities(probs, LABELS, sep="   ") == expected.replace(", ", "   ")
    assert ranked_probabilities([0.5, 0.0, 0.5], LABELS).startswith("negative 0.50, positive")


def test_lm_metrics_uniform_bytes_is_eight_bits():
    # uniform over 256 byte-tokens: each token costs ln 256 nats = 8 bits, one byte each
    n = 1000
    m = lm_metrics(n * math.log(256), n_tokens=n, n_bytes=n)
    assert m["bpb"] == pytest.approx(8.0)
    assert m["loss"] == pytest.approx(math.log(256))
    assert m["ppl"] == pytest.approx(256.0)


def test_lm_metrics_tokens_longer_than_a_byte():
    # 10 tokens of 4 bytes each, 2 nats per token
    m = lm_metrics(20.0, n_tokens=10, n_bytes=40)
    assert m["loss"] == pytest.approx(2.0)
    assert m["ppl"] == pytest.approx(math.exp(2.0))
    assert m["bpb"] == pytest.approx(20.0 / math.log(2) / 40)


@pytest.mark.parametrize("n_tokens, n_bytes", [(0, 10), (10, 0), (-1, 10)])
def test_lm_metrics_bad_counts_raise(n_tokens, n_bytes):
    with pytest.raises(ValueError):
        lm_metrics(1.0, n_tokens=n_tokens, n_bytes=n_bytes)


# -- the official score of each task ------------------------------------------------------


def test_task_scores_by_hand():
    # irony: true [0, 0, 1, 1, 1], predicted [0, 1, 1, 1, 0]
    # class irony: tp 2, predicted 3, true 3 -> precision 2/3, recall 2/3, F1 2/3
    irony = classification_metrics([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], ["non_irony", "irony"])
    assert task_score(irony, "positive_f1") == pytest.approx(2 / 3)
    # non_irony: tp 1, predicted 2, true 2 -> F1 1/2; macro-F1 (1/2 + 2/3) / 2
    assert task_score(irony, "macro_f1") == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert task_score(irony, "accuracy") == pytest.approx(3 / 5)

    # stance: none 0, against 1, favor 2; true [0, 1, 1, 2, 2, 2], pred [1, 1, 0, 2, 2, 1]
    # against: tp 1, predicted 3, true 2 -> P 1/3, R 1/2, F1 2/5
    # favor:   tp 2, predicted 2, true 3 -> P 1,   R 2/3, F1 4/5
    stance = classification_metrics([0, 1, 1, 2, 2, 2], [1, 1, 0, 2, 2, 1],
                                     ["none", "against", "favor"])  # fmt: skip
    assert task_score(stance, "stance_f1") == pytest.approx((2 / 5 + 4 / 5) / 2)
    # none (tp 0) is not in the stance score, but is in macro-F1
    assert task_score(stance, "macro_f1") == pytest.approx((0 + 2 / 5 + 4 / 5) / 3)
    assert task_score(stance, "macro_recall") == pytest.approx((0 + 1 / 2 + 2 / 3) / 3)


def test_task_scores_refuse_what_they_cannot_score():
    three = classification_metrics([0, 1, 2], [0, 1, 2], ["a", "b", "c"])
    with pytest.raises(ValueError, match="two classes"):
        task_score(three, "positive_f1")
    with pytest.raises(ValueError, match="'against' and 'favor'"):
        task_score(three, "stance_f1")
    with pytest.raises(ValueError, match="unknown metric"):
        task_score(three, "f2")
    assert set(TWEETEVAL_METRICS.values()) <= set(METRICS)


def test_the_best_threshold_by_hand():
    # p(positive) [0.1, 0.4, 0.6, 0.35], true [0, 1, 1, 0]: at 0.5 the 0.4 post is missed
    # (macro-F1 (0.8 + 0.667) / 2 = 0.733); between 0.35 and 0.4 every post is right
    p, y, names = [0.1, 0.4, 0.6, 0.35], [0, 1, 1, 0], ["not-hate", "hate"]
    threshold, score = best_threshold(p, y, names, "macro_f1")
    assert threshold == pytest.approx(0.375) and score == 1.0
    probs = [[1 - x, x] for x in p]
    assert predictions(probs) == [0, 0, 1, 0]  # the likelier class
    assert predictions(probs, threshold) == [0, 1, 1, 0]
    # all posts already right at 0.5: the tie goes to 0.5 itself
    assert best_threshold([0.2, 0.9], [0, 1], names, "positive_f1") == (0.5, 1.0)
    with pytest.raises(ValueError, match="two-class"):
        predictions([[0.2, 0.3, 0.5]], 0.5)
