"""Plots of a run's history."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_history(history: Sequence, path: str, title: str = "") -> None:
    """Best and mean population fitness against individuals, saved as PNG."""
    h = np.asarray(history, float).reshape(-1, 4)
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(h):
        ax.plot(h[:, 0], h[:, 3], label="best")
        ax.plot(h[:, 0], h[:, 2], label="population mean")
    ax.set_xlabel("individuals")
    ax.set_ylabel("search fitness")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
