"""A NaN-safe session summary for eva: results.json is written even when a metric is NaN."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
from eva.core.trainers import _recorder
from loguru import logger

_INSTALLED_MARK = "__eva_coralbay_nan_safe__"


def _finite_or_none(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def calculate_statistics(session_metrics: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """Summarises each metric's per-run values as mean, stdev and values.

    A NaN (or infinite) value becomes null in `values`, and the mean and stdev of that metric
    become null too: averaging only the finite runs would report a number that no run produced
    and hide the failure. Each such metric is named in a warning.

    Args:
        session_metrics: Per metric, the value of every run.

    Returns:
        Per metric, `{"mean", "stdev", "values"}` with JSON-safe numbers or null.
    """
    summary: dict[str, Any] = {}
    for name, raw_values in session_metrics.items():
        values = [_finite_or_none(value) for value in raw_values]
        finite = [value for value in values if value is not None]
        if len(finite) < len(values):
            logger.warning(
                f"Metric '{name}' is NaN in {len(values) - len(finite)} of {len(values)} run(s); "
                "it is recorded as null in results.json."
            )
            summary[name] = {"mean": None, "stdev": None, "values": values}
            continue
        summary[name] = {
            "mean": statistics.mean(finite),
            "stdev": statistics.stdev(finite) if len(finite) > 1 else 0.0,
            "values": values,
        }
    return summary


def _print_table(metrics_dict: dict[str, Any], stage: str, dataset_idx: int) -> None:
    """Prints one dataset's summary like eva does, showing null as 'nan'."""
    from rich import console as rich_console
    from rich import table as rich_table

    def _format(value: float | None) -> str:
        return "nan" if value is None else f"{value:.3f}"

    metrics_table = rich_table.Table(
        title=f"\n{stage.capitalize()} Dataset {dataset_idx}", title_style="bold"
    )
    metrics_table.add_column("Metric", style="cyan")
    metrics_table.add_column("Mean", style="magenta")
    metrics_table.add_column("Stdev", style="magenta")
    metrics_table.add_column("All", style="magenta")
    for metric_name, metric in metrics_dict.items():
        metrics_table.add_row(
            metric_name,
            _format(metric["mean"]),
            _format(metric["stdev"]),
            ", ".join(_format(value) for value in metric["values"]),
        )
    rich_console.Console().print(metrics_table)


def install_nan_safe_recorder() -> None:
    """Makes eva's session recorder write results.json when a metric is NaN.

    eva 0.4.5 computes `statistics.stdev` over the runs, which raises on NaN, so a session with
    a NaN metric and n_runs > 1 crashes and writes no results.json at all (and a single run
    would write the invalid JSON token `NaN`). This replaces the recorder's summary function in
    place; it is idempotent.
    """
    if getattr(_recorder, _INSTALLED_MARK, False):
        return
    _recorder._calculate_statistics = calculate_statistics  # type: ignore[assignment]
    _recorder._print_table = _print_table  # type: ignore[assignment]
    setattr(_recorder, _INSTALLED_MARK, True)


class NanSafeResults(pl.Callback):
    """Listed among a config's trainer callbacks: results.json is written when a metric is NaN.

    eva builds the trainer with its callbacks before the first run and records the session after
    the last one, so constructing this callback installs the NaN-safe summary
    (`install_nan_safe_recorder`) for the whole session. Nothing is patched by importing this
    package: a config that wants the behaviour says so.
    """

    def __init__(self) -> None:
        super().__init__()
        install_nan_safe_recorder()
