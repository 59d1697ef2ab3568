"""docs/tasks.md stays in step with the adapters it documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from eva_coralbay.data import adapters

DOC = (Path(__file__).resolve().parents[2] / "docs" / "tasks.md").read_text()


@pytest.mark.parametrize("adapter", adapters.SEGMENTATION_ADAPTERS, ids=lambda a: a.__name__)
def test_every_segmentation_task_is_documented(adapter: type[adapters.SegmentationAdapter]) -> None:
    row = next(line for line in DOC.splitlines() if line.startswith(f"| `{adapter.task_id}` |"))
    sizes = " / ".join(str(n) for n in adapter.expected_cases.values())
    assert sizes in row, row
    section = DOC[DOC.index(f"(`{adapter.task_id}`)") :]
    section = section[: section.find("\n### ")]
    assert f"`eva_coralbay.data.adapters.{adapter.__name__}`" in section
    assert adapter.license in section
    assert adapter.manual_download.strip().splitlines()[0] in section
    if adapter is not adapters.TotalSegmentatorV2:
        for name in adapter.canonical_classes[1:]:
            assert f"`{name}`" in section


@pytest.mark.parametrize("adapter", [adapters.OrganMNIST3D, adapters.NoduleMNIST3D])
def test_classification_tasks_are_documented(adapter: type[adapters.OrganMNIST3D]) -> None:
    counts = adapter.info()["n_samples"]
    row = next(line for line in DOC.splitlines() if line.startswith(f"| `{adapter.task_id}` |"))
    assert f"{counts['train']} / {counts['val']} / {counts['test']}" in row
    assert f"`eva_coralbay.data.adapters.{adapter.__name__}`" in DOC


def test_every_leaderboard_task_has_an_adapter_a_config_and_a_split_source() -> None:
    from eva_coralbay import tasks
    from eva_coralbay.leaderboard.seeds import EVA_PR_1021_TASKS

    section = DOC[DOC.index("### The leaderboard's tasks") : DOC.index("## Using a task")]
    for task_id in EVA_PR_1021_TASKS:
        record = tasks.get_benchmark(task_id)
        assert record.adapter and record.config, task_id
        row = next(line for line in section.splitlines() if line.startswith(f"| `{task_id}` |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1] == f"`{record.adapter}`", row
        assert cells[2] == f"`{record.config.removeprefix('radiology/')}`", row
        assert all(cells[3:]), row
