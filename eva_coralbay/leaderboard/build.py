"""`build`: the leaderboard's parquet table, README, heatmap and website from its submissions."""

from __future__ import annotations

import dataclasses
import io
import pathlib

from eva_coralbay._io import atomic_write_bytes, atomic_write_tree
from eva_coralbay.leaderboard import (
    aggregate,
    load,
    render_curves,
    render_heatmap,
    render_markdown,
    render_site,
    robustness_board,
    variants,
)
from eva_coralbay.leaderboard.errors import LeaderboardError
from eva_coralbay.leaderboard.store import Store

PARQUET = "leaderboard.parquet"
README = "README.md"
HEATMAP_PNG = "heatmap.png"
HEATMAP_SVG = "heatmap.svg"
CURVES_SVG = render_site.CURVES
"""The label-efficiency plot; written only when the board has label-efficiency variants."""
SITE = render_site.FOLDER
"""The website's folder; its files are the outputs named `site/<path>`."""


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """What a build wrote."""

    paths: list[pathlib.Path]
    """The files written, and the site folder (once)."""

    n_models: int
    n_tasks: int
    n_entries: int
    site_files: int
    """How many files the site folder holds."""

    site_written: int
    """How many of them this build wrote (the others already held the same bytes)."""


def _parquet_bytes(board: aggregate.Board) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    string, number, flag = pa.string(), pa.float64(), pa.bool_()
    types = {
        "parameters": pa.int64(),
        "embedding_dim": pa.int64(),
        "pretraining_datasets": pa.list_(string),
        "mean": number,
        "stdev": number,
        "n_runs": pa.int64(),
        "synthetic": flag,
        "contaminated": flag,
        "rank": number,
        "best": flag,
        "tied_with_best": flag,
        "p_value_vs_best": number,
    }
    arrow_schema = pa.schema([(name, types.get(name, string)) for name in aggregate.ENTRY_COLUMNS])
    entries = board.entries.astype(object).where(board.entries.notna(), None)
    table = pa.Table.from_pandas(entries, schema=arrow_schema, preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def render_outputs(
    root: pathlib.Path, *, top: int = render_heatmap.TOP_MODELS
) -> tuple[dict[str, bytes], aggregate.Board]:
    """Renders every output of `root` in memory: the files by name, and the tables.

    The site's files are named `site/<path>`.

    Raises:
        LeaderboardError: When the folder has no submissions or any invalid one.
    """
    with load.collector_paused():
        return _render_outputs(root, top)


def _render_outputs(root: pathlib.Path, top: int) -> tuple[dict[str, bytes], aggregate.Board]:
    store = Store(root)
    loaded = load.load(store)
    robustness, robustness_problems = robustness_board.load(store)
    problems = loaded.problems + robustness_problems
    if problems:
        raise LeaderboardError(
            f"{root}: {len(problems)} problem(s); fix them (`coralbay leaderboard "
            "validate` lists them) and build again:\n" + "\n".join(problems)
        )
    if not loaded.entries:
        raise LeaderboardError(f"{store.submissions}: no submissions to build from")
    board = aggregate.aggregate(loaded.entries, store, robustness)
    # Replaced label-efficiency entries stay in the history folders, not in the tables.
    history = [item for item in loaded.history if not variants.is_variant(item[1].task_id)]
    png, svg = render_heatmap.render(board, top=top)
    curves = render_curves.render(board) if len(board.label_efficiency) else None
    readme = render_markdown.render(
        board, history, HEATMAP_SVG, CURVES_SVG if curves is not None else None
    )
    outputs = {
        PARQUET: _parquet_bytes(board),
        README: readme.encode(),
        HEATMAP_PNG: png,
        HEATMAP_SVG: svg,
    }
    if curves is not None:
        outputs[CURVES_SVG] = curves
    site = render_site.render(board, history, svg, top, curves)
    outputs.update({f"{SITE}/{name}": content for name, content in site.items()})
    return outputs, board


def build(root: pathlib.Path, *, top: int = render_heatmap.TOP_MODELS) -> BuildResult:
    """Writes `leaderboard.parquet`, `README.md`, `heatmap.png`, `heatmap.svg` and `site/`.

    And `label_efficiency.svg` when the board has label-efficiency variants (removed when it
    no longer has any).

    The same submissions give byte-identical files. Each file is replaced atomically; site
    pages whose bytes did not change are left alone, and files in `site/` that the build no
    longer writes are removed. Nothing is written when any submission is invalid.

    Raises:
        LeaderboardError: When the folder has no submissions or any invalid one.
    """
    outputs, board = render_outputs(root, top=top)
    prefix = f"{SITE}/"
    paths = []
    for name, content in outputs.items():
        if not name.startswith(prefix):
            atomic_write_bytes(root / name, content)
            paths.append(root / name)
    site = {
        name[len(prefix) :]: content for name, content in outputs.items() if name.startswith(prefix)
    }
    if CURVES_SVG not in outputs:  # the board's variants were all removed
        (root / CURVES_SVG).unlink(missing_ok=True)
    written = atomic_write_tree(root / SITE, site)
    paths.append(root / SITE)
    return BuildResult(
        paths, len(board.models), len(board.tasks), len(board.entries), len(site), len(written)
    )
