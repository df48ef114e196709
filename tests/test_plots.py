"""The plots write readable PNG files for every shape of metrics log, and refuse bad input."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import matplotlib.image
import matplotlib.pyplot as plt
import pytest

from minillm.plots import plot_confusion, plot_losses

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = ["negative", "neutral", "positive"]


def train_rows(n: int = 30) -> list[dict]:
    return [
        {
            "step": 10 * i,
            "kind": "train",
            "loss": 4.0 * math.exp(-i / 10) + 0.1 * (i % 3),
            "lr": 1e-3,
            "tokens_per_s": 4000.0,
            "elapsed_s": 1.0 * i,
        }
        for i in range(n)
    ]


def lm_rows() -> list[dict]:
    val = [
        {
            "step": 100 * i,
            "kind": "val",
            "loss": 3.5 - 0.2 * i,
            "ppl": math.exp(3.5 - 0.2 * i),
            "bpb": 1.5 - 0.08 * i,
        }
        for i in range(4)
    ]
    return train_rows() + val + [{"step": 0, "kind": "config", "n_layer": 4}]


def sentiment_rows() -> list[dict]:
    val = [
        {
            "step": 100 * i,
            "kind": "val",
            "loss": 1.1 - 0.1 * i,
            "accuracy": 0.4 + 0.08 * i,
            "macro_recall": 0.35 + 0.09 * i,
            "macro_f1": 0.33 + 0.09 * i,
        }
        for i in range(4)
    ]
    return train_rows() + val


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 0 and image.shape[1] > 0


@pytest.mark.parametrize(
    "rows",
    [
        lm_rows(),
        sentiment_rows(),
        train_rows(),
        train_rows(1),
        [{"step": 5, "kind": "val", "loss": 2.0}],
    ],
    ids=["lm", "sentiment", "no-val", "single-row", "val-only"],
)
def test_plot_losses_writes_png(tmp_path, rows):
    figures_before = plt.get_fignums()
    path = plot_losses(rows, tmp_path / "sub" / "losses.png", title="run")
    assert path == tmp_path / "sub" / "losses.png"
    assert_png(path)
    assert plt.get_fignums() == figures_before  # the figure was closed


def test_plot_losses_bad_input(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plot_losses([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no 'train' or 'val' rows"):
        plot_losses([{"step": 1, "kind": "test", "loss": 1.0}], tmp_path / "x.png")


@pytest.mark.parametrize("normalize", [True, False])
def test_plot_confusion_writes_png(tmp_path, normalize):
    figures_before = plt.get_fignums()
    confusion = [[50, 30, 20], [10, 80, 10], [0, 5, 0]]  # last row: a class never right
    path = plot_confusion(confusion, LABELS, tmp_path / "confusion.png", normalize=normalize)
    assert_png(path)
    assert plt.get_fignums() == figures_before


def test_plot_confusion_empty_row(tmp_path):
    path = plot_confusion([[3, 1, 0], [0, 0, 0], [1, 0, 2]], LABELS, tmp_path / "c.png")
    assert_png(path)


@pytest.mark.parametrize(
    "confusion, labels",
    [
        ([[1, 2], [3, 4]], LABELS),  # shape does not match the labels
        ([[1, 2, 3]], LABELS),
        ([[1, -2], [3, 4]], ["a", "b"]),  # negative count
        ([[1.5, 2], [3, 4]], ["a", "b"]),  # not a count
        ([], []),
    ],
)
def test_plot_confusion_bad_input(tmp_path, confusion, labels):
    with pytest.raises(ValueError):
        plot_confusion(confusion, labels, tmp_path / "c.png")


NO_GLOBAL_STATE = """
import sys
import matplotlib
before = matplotlib.rcParams._get_backend_or_none()  # None: no backend picked yet
import numpy as np
import minillm.explain, minillm.inference
from minillm import plots
out = sys.argv[1]
plots.plot_losses([{"step": 1, "kind": "train", "loss": 2.0}], out + "/l.png")
plots.plot_confusion([[1, 0], [0, 1]], ["a", "b"], out + "/c.png")
plots.plot_attention(np.full((1, 1, 2, 2), 0.5), ["a", "b"], out + "/a.png")
plots.plot_saliency(["a", "b"], np.array([1.0, -0.5]), out + "/s.png")
assert matplotlib.rcParams._get_backend_or_none() == before, "a backend was picked"
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
"""


@pytest.mark.parametrize("backend", [None, "svg"])
def test_plotting_leaves_matplotlib_as_it_found_it(tmp_path, backend):
    # in a fresh process: no backend picked (or the user's MPLBACKEND kept, as a notebook's
    # inline backend must be), pyplot never imported
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    if backend:
        env["MPLBACKEND"] = backend
    done = subprocess.run([sys.executable, "-c", NO_GLOBAL_STATE, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "c.png", "l.png", "s.png"]
