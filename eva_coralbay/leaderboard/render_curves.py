"""The label-efficiency plot (SVG): score against labelled cases per task, reproducible bytes."""

from __future__ import annotations

import io
import math

from eva_coralbay.leaderboard.aggregate import Board
from eva_coralbay.leaderboard.render_markdown import label_efficiency_grids
from eva_coralbay.leaderboard.variants import FULL_LABELS, count_unit

LEGEND_MODELS = 10
"""The first models in leaderboard order are named in the legend; more would hide the plot."""

PANEL_COLUMNS = 3
"""Panels (one per task) per row of the figure."""


def render(board: Board) -> bytes:
    """Draws one panel per task with variants: each model's score against its labels.

    The SVG has fixed ids and no date, so the same board gives the same bytes.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grids = label_efficiency_grids(board)
    # The legend names the first models in leaderboard order (models without a full-label
    # entry after them, by id), across the tasks.
    position = {model: index for index, model in enumerate(board.models.index)}
    named = sorted(
        {model for grid in grids for model, _ in grid.models},
        key=lambda model: (position.get(model, len(position)), model),
    )[:LEGEND_MODELS]
    columns = min(PANEL_COLUMNS, len(grids))
    rows = math.ceil(len(grids) / columns)
    with matplotlib.rc_context(
        {
            "svg.hashsalt": "eva-coralbay-leaderboard-label-efficiency",
            "svg.fonttype": "none",
            "font.family": "DejaVu Sans",
            "font.size": 8,
        }
    ):
        figure = Figure(figsize=(3.6 * columns + 0.4, 2.9 * rows + 0.5), dpi=100)
        FigureCanvasAgg(figure)
        axes_grid = figure.subplots(rows, columns, squeeze=False)
        colours = matplotlib.colormaps["tab10"]
        for index, grid in enumerate(grids):
            axes = axes_grid[index // columns][index % columns]
            task = grid.task
            # The counts at even steps rather than on a log scale: each is a protocol of its
            # own, and the full-label point has no count.
            for model_id, name in grid.models:
                steps = [
                    step
                    for step, count in enumerate(grid.counts)
                    if (model_id, count) in grid.points
                ]
                means = [grid.points[(model_id, grid.counts[step])].mean for step in steps]
                rank = named.index(model_id) if model_id in named else None
                axes.plot(
                    steps,
                    means,
                    marker="o",
                    markersize=3,
                    linewidth=1.2 if rank is not None else 0.6,
                    color=colours(rank % 10) if rank is not None else "#b0b0b0",
                    label=name if rank is not None else None,
                )
            axes.set_xticks(
                range(len(grid.counts)),
                [FULL_LABELS if count is None else str(count) for count in grid.counts],
            )
            axes.set_title(f"{task.display_name} ({task.metric_spec.display_name})", fontsize=8)
            axes.set_xlabel(count_unit(task.type))
            axes.grid(True, linewidth=0.3, alpha=0.5)
            axes.margins(x=0.08, y=0.1)
        for index in range(len(grids), rows * columns):
            axes_grid[index // columns][index % columns].set_visible(False)
        handles, labels = axes_grid[0][0].get_legend_handles_labels()
        for axes in axes_grid.flat[1 : len(grids)]:
            more_handles, more_labels = axes.get_legend_handles_labels()
            for handle, label in zip(more_handles, more_labels, strict=True):
                if label not in labels:
                    handles.append(handle)
                    labels.append(label)
        figure.legend(handles, labels, loc="lower center", ncols=min(5, len(labels)), fontsize=7)
        figure.suptitle(
            "Score against labelled training data (last point: every label)", fontsize=9
        )
        legend_rows = math.ceil(len(labels) / 5) if labels else 0
        figure.subplots_adjust(
            left=0.08,
            right=0.98,
            top=1 - 0.45 / figure.get_figheight(),
            bottom=(0.45 + 0.18 * legend_rows) / figure.get_figheight() + 0.08,
            hspace=0.55,
            wspace=0.25,
        )
        svg = io.BytesIO()
        figure.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return svg.getvalue()
