"""The task catalogue: one record per benchmark, and every reader of task facts reads it."""

from __future__ import annotations

import pytest

from eva_coralbay import tasks
from eva_coralbay.data import adapters
from eva_coralbay.leaderboard import tasks as leaderboard_tasks
from eva_coralbay.tasks import vocabulary
from tests.conftest import REPOSITORY_ROOT
from tools import configs


def test_every_adapter_has_its_record_and_every_record_its_adapter() -> None:
    named = {b.adapter: b.id for b in tasks.BENCHMARKS if b.adapter}
    shipped = [
        *adapters.SEGMENTATION_ADAPTERS,
        adapters.OrganMNIST3D,
        adapters.NoduleMNIST3D,
        adapters.LUNA25,
        *adapters.SCAN_ADAPTERS,
    ]
    assert {adapter.__name__: adapter.task_id for adapter in shipped} == named
    for name in named:
        assert hasattr(adapters, name), name


@pytest.mark.parametrize(
    "adapter", adapters.SEGMENTATION_ADAPTERS, ids=lambda adapter: adapter.task_id
)
def test_adapters_read_their_facts_from_the_record(
    adapter: type[adapters.SegmentationAdapter],
) -> None:
    record = tasks.get_benchmark(adapter.task_id)
    assert record.type == "segmentation"
    assert (adapter.title, adapter.homepage, adapter.license, adapter.split_source) == (
        record.title,
        record.homepage,
        record.license,
        record.split_source,
    )
    assert adapter.canonical_classes == record.classes and record.classes[0] == "background"
    assert len(adapter.native_classes) == len(adapter.canonical_classes)
    assert adapter.expected_cases == record.cases_per_split
    vocabulary.check_canonical(record.classes, record.id)  # names of the shared vocabulary


def test_the_leaderboard_and_the_configs_read_the_records() -> None:
    for record in tasks.BENCHMARKS:
        task = leaderboard_tasks.builtin_registry().get(record.id)
        assert (task.display_name, task.url, task.citation) == (
            record.display_name,
            record.homepage,
            record.citation,
        )
        assert task.image_sources == record.image_sources and task.type == record.type
        if record.config is not None:
            assert (REPOSITORY_ROOT / "configs" / record.config).is_file(), record.config
    generated = {task.task_id: task for task in configs.segmentation_tasks()}
    for adapter in adapters.SEGMENTATION_ADAPTERS:
        record = tasks.get_benchmark(adapter.task_id)
        assert generated[record.id].title == record.title
        assert generated[record.id].class_names == record.classes


def test_a_record_that_contradicts_itself_is_refused() -> None:
    with pytest.raises(ValueError, match="num_classes 3 but 2 class names"):
        tasks.Benchmark(
            id="x", title="X", display_name="X", type="classification", homepage="h",
            citation="c", classes=("a", "b"), num_classes=3,
        )  # fmt: skip
    with pytest.raises(ValueError, match="unknown type"):
        tasks.Benchmark(
            id="x", title="X", display_name="X", type="detection",  # type: ignore[arg-type]
            homepage="h", citation="c",
        )  # fmt: skip
    with pytest.raises(KeyError, match="unknown task 'btcv2'; known: btcv"):
        tasks.get_benchmark("btcv2")


def test_an_adapter_named_for_another_record_is_refused() -> None:
    with pytest.raises(TypeError, match="names 'BTCV' as the adapter of task 'btcv'"):

        class NotBTCV(adapters.SegmentationAdapter):  # pyright: ignore[reportUnusedClass]
            task_id = "btcv"
