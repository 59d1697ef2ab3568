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

ANNOTATED_CELLS = 400
"""Up to this many cells each shows its value; a larger grid shows only the colours (drawing
hundreds of texts dominates the build), with contaminated cells dotted."""


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

    row_labels = [str(name) for name in models["display_name"]]
    column_labels = [task.display_name for task in board.tasks]
    # Fixed margins (inches) instead of tight_layout, which would draw every text once more.
    cell_width, cell_height = 0.62, 0.28
    left = 0.25 + 0.058 * max(map(len, row_labels), default=4)
    bottom = 0.3 + 0.04 * max(map(len, column_labels), default=4)
    margin_top, margin_right = 0.55, 0.8
    width = max(6.0, left + cell_width * len(columns) + margin_right)
    height = bottom + cell_height * len(models) + margin_top
    shown = (
        f"top {len(models)} of {len(board.models)} models by the leaderboard's order"
        if len(board.models) > len(models)
        else f"{len(models)} models"
    )
    # Fixed ids in the SVG (otherwise random per process), text as text, the bundled font.
    with matplotlib.rc_context(
        {
            "svg.hashsalt": "eva-coralbay-leaderboard",
            "svg.fonttype": "none",
            "font.family": "DejaVu Sans",
            "font.size": 8,
        }
    ):
        figure = Figure(figsize=(width, height), dpi=100)
        FigureCanvasAgg(figure)
        grid_width, grid_height = cell_width * len(columns), cell_height * len(models)
        axes = figure.add_axes(
            (left / width, bottom / height, grid_width / width, grid_height / height)
        )
        colorbar_axes = figure.add_axes(
            ((left + grid_width + 0.1) / width, bottom / height, 0.12 / width, grid_height / height)
        )
        colormap = matplotlib.colormaps["viridis"].with_extremes(bad="#e6e6e6")
        finite = values[np.isfinite(values)]
        image = axes.imshow(
            np.ma.masked_invalid(values),
            cmap=colormap,
            vmin=float(finite.min()) if finite.size else 0.0,
            vmax=float(finite.max()) if finite.size else 1.0,
            aspect="auto",
            # The SVG then holds one pixel per cell, scaled with crisp edges, instead of a
            # resampled 100-dpi raster (smaller, exact and half the time); Agg draws "none"
            # as "nearest", so the PNG is unchanged.
            interpolation="none",
        )
        threshold = float(np.mean(finite)) if finite.size else 0.5
        if values.size <= ANNOTATED_CELLS:
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
        elif contaminated.any():
            rows, columns_ = np.nonzero(contaminated)
            axes.scatter(columns_ + 0.35, rows - 0.3, s=6, c="white", marker="o", linewidths=0)
        axes.set_xticks(range(len(columns)), column_labels, rotation=40, ha="right")
        axes.set_yticks(range(len(models)), row_labels)
        n_segmentation = sum(task.type == "segmentation" for task in board.tasks)
        if 0 < n_segmentation < len(columns):
            axes.axvline(n_segmentation - 0.5, color="white", linewidth=3)
        figure.text(
            0.1 / width,
            1 - 0.1 / height,
            f"3D radiology leaderboard: {shown}\nDice (segmentation), balanced accuracy "
            f"(classification); {CONTAMINATED} or dot: pretrained on the task's images",
            va="top",
            fontsize=8,
        )
        figure.colorbar(image, cax=colorbar_axes)
        png, svg = io.BytesIO(), io.BytesIO()
        figure.savefig(png, format="png", metadata={"Software": None})
        figure.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return png.getvalue(), svg.getvalue()
