"""PNG charts of a run, rendered from its stored history and confusion matrix (matplotlib, Agg)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
    return out.getvalue()


def curves_png(history: dict[str, list[float]]) -> bytes:
    """Loss and accuracy per epoch, training and validation."""
    fig = Figure(figsize=(9, 3.4))
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "accuracy")):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            values = history.get(key) or []
            if values:
                ax.plot(range(1, len(values) + 1), values, style, marker="o", markersize=3,
                        label="validation" if key.startswith("val_") else "training")
        ax.set_title(metric)
        ax.set_xlabel("epoch (head, then fine-tuning)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    return _png(fig)


def confusion_png(confusion: list[list[int]], labels: list[str], title: str) -> bytes:
    """Rows: true label; columns: predicted; each cell its count."""
    n = max(1, len(labels))
    size = min(12, 2.5 + 0.45 * n)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    matrix = confusion or [[0] * n for _ in range(n)]
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = max((max(row) for row in matrix if row), default=0) or 1
    if n <= 30:
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                if value:
                    ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                            color="white" if value > peak / 2 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _png(fig)
