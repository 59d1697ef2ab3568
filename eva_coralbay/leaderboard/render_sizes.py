"""The site's plot of model size against mean score (SVG), byte-for-byte reproducible."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pandas as pd

from eva_coralbay.leaderboard.aggregate import Board

LABELLED_MODELS = 10
"""The first models in leaderboard order get their name beside their point."""

COLOURS = {"none": "#1b7837", "some": "#c51b7d", "unknown": "#7f7f7f"}
"""Point colour by the model's contamination: none, some task, pretraining undeclared."""

LABELS = {
    "none": "no contaminated task",
    "some": "pretrained on a task's images",
    "unknown": "pretraining data not declared",
}


@dataclasses.dataclass(frozen=True)
class _Panel:
    label: str
    shown: np.ndarray
    """Which models (rows of the board) the panel draws."""
    x: np.ndarray


def _floats(values: pd.Series) -> np.ndarray:
    """Numbers as floats, None as NaN."""
    return np.array([np.nan if value is None else float(value) for value in values], dtype=float)


def _short_number(value: float, _position: int | None = None) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def contamination_state(board: Board) -> pd.Series:
    """Per model: "none", "some" (pretrained on a scored task's images) or "unknown"."""
    models = board.models
    state = np.where(
        ~models["contamination_known"].astype(bool),
        "unknown",
        np.where(models["contaminated_tasks"].map(len) > 0, "some", "none"),
    )
    return pd.Series(state, index=models.index)


def render(board: Board) -> bytes:
    """Plots each model's mean score against its parameters (embedding size where unknown).

    Models with neither stated are left out (the caption says how many). The SVG has fixed
    ids and no date, so the same board gives the same bytes.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    models = board.models
    score = _floats(models["mean_all"])
    parameters = _floats(models["parameters"])
    embedding = _floats(models["embedding_dim"])
    scored = ~np.isnan(score)
    by_parameters = scored & ~np.isnan(parameters)
    by_embedding = scored & np.isnan(parameters) & ~np.isnan(embedding)
    panels = [
        _Panel("Parameters", by_parameters, parameters),
        _Panel("Embedding size (parameters not stated)", by_embedding, embedding),
    ]
    panels = [panel for panel in panels if panel.shown.any()]
    left_out = len(models) - int(by_parameters.sum() + by_embedding.sum())
    states = contamination_state(board).to_numpy()
    names = models["display_name"].astype(str).to_numpy()
    with matplotlib.rc_context(
        {
            "svg.hashsalt": "eva-coralbay-leaderboard-sizes",
            "svg.fonttype": "none",
            "font.family": "DejaVu Sans",
            "font.size": 8,
        }
    ):
        # Without a point to draw, a one-line figure says so instead of empty axes.
        size = (4.2 * len(panels) + 0.6, 3.6) if panels else (5.0, 0.5)
        figure = Figure(figsize=size, dpi=100)
        FigureCanvasAgg(figure)
        if not panels:
            figure.text(
                0.5,
                0.5,
                f"Model size against mean score: none of the {len(models)} models states its "
                "parameters or embedding size.",
                ha="center",
                va="center",
                fontsize=8,
            )
        axes_list = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0] if panels else []
        for axes, panel in zip(axes_list, panels, strict=True):
            for state, colour in COLOURS.items():
                chosen = panel.shown & (states == state)
                if chosen.any():
                    axes.scatter(
                        panel.x[chosen],
                        score[chosen],
                        s=14,
                        c=colour,
                        label=LABELS[state],
                        linewidths=0,
                        alpha=0.8,
                    )
            for position in np.flatnonzero(panel.shown[:LABELLED_MODELS]):
                axes.annotate(
                    names[position],
                    (panel.x[position], score[position]),
                    xytext=(3, 3),
                    textcoords="offset points",
                    fontsize=7,
                )
            x = panel.x[panel.shown]
            if x.min() > 0 and x.max() / x.min() > 20:
                axes.set_xscale("log")
            # 25M rather than 2.5 with a shared "1e7" offset; room for the names at the edges.
            axes.xaxis.set_major_formatter(FuncFormatter(_short_number))
            axes.margins(x=0.2, y=0.1)
            axes.set_xlabel(panel.label)
            axes.grid(True, linewidth=0.3, alpha=0.5)
        if panels:
            axes_list[0].set_ylabel("Mean score over the scored tasks")
            axes_list[0].legend(loc="lower right", fontsize=7, frameon=False)
            note = f"; {left_out} model(s) state neither and are not shown" if left_out else ""
            figure.suptitle(f"Model size against mean score{note}", fontsize=9)
            figure.subplots_adjust(left=0.1, right=0.97, bottom=0.14, top=0.9, wspace=0.08)
        svg = io.BytesIO()
        figure.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return svg.getvalue()
