"""The leaderboard heatmap (PNG and SVG), byte-for-byte reproducible.

Only the top `TOP_MODELS` rows of the overall order are drawn: a figure of a thousand rows is
unreadable and slow to render; the README's tables hold every model.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from eva_coralbay.leaderboard.aggregate import Board
from eva_coralbay.leaderboard.render_markdown import CONTAMINATED

TOP_MODELS = 30
"""The most models the heatmap shows."""


def shown_models(board: Board, top: int = TOP_MODELS) -> pd.DataFrame:
    """The rows the heatmap draws: the first `top` models in leaderboard order."""
    return board.models.iloc[:top]


def render(board: Board, top: int = TOP_MODELS) -> tuple[bytes, bytes]:
    """Draws the score heatmap of the top models.

    Returns:
        The PNG and the SVG bytes. Both carry no date or software-version metadata, so the
        same board gives the same bytes.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = shown_models(board, top)
    columns = [task.id for task in board.tasks]
    grid = board.entries.pivot(index="model_id", columns="task_id", values="mean")
    grid = grid.reindex(index=models.index, columns=columns).astype(float)
    contaminated = board.entries.pivot(index="model_id", columns="task_id", values="contaminated")
    contaminated = contaminated.reindex(index=models.index, columns=columns).eq(True).to_numpy()
    values = grid.to_numpy()

    # Fixed ids in the SVG (otherwise random per process) and the font matplotlib bundles.
    with matplotlib.rc_context(
        {
            "svg.hashsalt": "eva-coralbay-leaderboard",
            "svg.fonttype": "path",
            "font.family": "DejaVu Sans",
            "font.size": 8,
        }
    ):
        figure = Figure(figsize=(2.8 + 0.62 * len(columns), 1.6 + 0.28 * len(models)), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        colormap = matplotlib.colormaps["viridis"].with_extremes(bad="#e6e6e6")
        finite = values[np.isfinite(values)]
        image = axes.imshow(
            np.ma.masked_invalid(values),
            cmap=colormap,
            vmin=float(finite.min()) if finite.size else 0.0,
            vmax=float(finite.max()) if finite.size else 1.0,
            aspect="auto",
            interpolation="nearest",
        )
        threshold = float(np.mean(finite)) if finite.size else 0.5
        for row, column in np.ndindex(values.shape):
            value = values[row, column]
            text = "—" if np.isnan(value) else f"{value:.2f}"
            if contaminated[row, column]:
                text += CONTAMINATED
            axes.text(
                column,
                row,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="black" if np.isnan(value) or value > threshold else "white",
            )
        labels = [task.display_name for task in board.tasks]
        axes.set_xticks(range(len(columns)), labels, rotation=40, ha="right")
        axes.set_yticks(range(len(models)), [str(name) for name in models["display_name"]])
        n_segmentation = sum(task.type == "segmentation" for task in board.tasks)
        if 0 < n_segmentation < len(columns):
            axes.axvline(n_segmentation - 0.5, color="white", linewidth=3)
        shown = (
            f"top {len(models)} of {len(board.models)} models"
            if len(board.models) > len(models)
            else f"{len(models)} models"
        )
        axes.set_title(
            f"3D radiology leaderboard ({shown}; segmentation: Dice, classification: balanced "
            f"accuracy; {CONTAMINATED}: pretrained on the task's images)",
            fontsize=8,
            loc="left",
        )
        figure.colorbar(image, ax=axes, fraction=0.025, pad=0.01)
        figure.tight_layout()
        png, svg = io.BytesIO(), io.BytesIO()
        figure.savefig(png, format="png", metadata={"Software": None})
        figure.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return png.getvalue(), svg.getvalue()
