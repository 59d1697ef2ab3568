"""The label-efficiency track: nested, deterministic training subsets of a segmentation task."""

from __future__ import annotations

import pathlib

import pytest

from eva_coralbay.data.adapters import DecathlonFormat, MSDSpleen
from eva_coralbay.data.adapters.base import (
    nested_subset,
    nested_subset_per_class,
    parse_label_count,
    parse_train_cases,
)
from eva_coralbay.data.synthetic import layouts


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("decathlon")
    return layouts.write_decathlon_format(
        root, train=range(1, 9), val=range(9, 12), shape=(16, 16, 16), spacing=6.0
    )


def _case_ids(root: pathlib.Path, split: str, train_cases: int | str | None) -> list[str]:
    dataset = DecathlonFormat(str(root), split=split, profile=None, train_cases=train_cases)
    dataset.configure()
    return [case.case_id for case in dataset.cases]


def test_subsets_are_nested_and_leave_validation_whole(dataset_root: pathlib.Path) -> None:
    every = _case_ids(dataset_root, "train", "all")
    assert len(every) == 8 and _case_ids(dataset_root, "train", None) == every
    subsets = {count: set(_case_ids(dataset_root, "train", count)) for count in (1, 3, 5, 8)}
    assert [len(subsets[count]) for count in (1, 3, 5, 8)] == [1, 3, 5, 8]
    assert subsets[1] < subsets[3] < subsets[5] < subsets[8] == set(every)
    assert _case_ids(dataset_root, "val", 1) == _case_ids(dataset_root, "val", "all")
    # Both splits at once: only the training cases are cut.
    both = _case_ids(dataset_root, None, 3)  # type: ignore[arg-type]
    assert set(both) == subsets[3] | set(_case_ids(dataset_root, "val", None))


def test_the_subset_depends_on_the_case_ids_alone() -> None:
    ids = [f"case_{number:03d}" for number in range(40)]
    assert nested_subset(ids, 5) == nested_subset(list(reversed(ids)), 5)
    assert nested_subset(ids, 5) == nested_subset(ids, 10)[:5]
    # Not simply the first files: a subset samples across the listing.
    assert nested_subset(ids, 5) != ids[:5]


def test_bad_counts_are_refused(dataset_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    for bad in (0, -1, "five", "2.5"):
        with pytest.raises(ValueError, match="positive integer or 'all'"):
            parse_train_cases(bad)
    dataset = DecathlonFormat(str(dataset_root), split="train", profile=None, train_cases=9)
    with pytest.raises(ValueError, match="train_cases=9, but the training split has 8 cases"):
        dataset.configure()
    # A benchmark adapter takes the setting too.
    spleen_root = layouts.writer_for(MSDSpleen)(tmp_path / "spleen")
    spleen = MSDSpleen(
        str(spleen_root), split="train", profile=None, allow_incomplete=True, train_cases=1
    )
    spleen.configure()
    assert len(spleen.cases) == 1


def test_per_class_subsets_are_nested_balanced_and_depend_on_the_ids_alone() -> None:
    ids = [f"train_{number:05d}" for number in range(60)]
    labels = [number % 3 for number in range(60)]
    one, five = (nested_subset_per_class(ids, labels, count) for count in (1, 5))
    assert set(one) < set(five)
    by_label = dict(zip(ids, labels, strict=True))
    assert sorted(by_label[sample] for sample in five) == [0] * 5 + [1] * 5 + [2] * 5
    # Each class in nested_subset's order: the same ids whatever the listing order.
    shuffled = list(reversed(range(60)))
    again = nested_subset_per_class([ids[i] for i in shuffled], [labels[i] for i in shuffled], 5)
    assert set(again) == set(five)
    assert [sample for sample in five if by_label[sample] == 0] == [
        sample for sample in ids if sample in set(nested_subset(ids[0::3], 5))
    ]
    assert five == [sample for sample in ids if sample in set(five)]  # the given order


def test_a_per_class_count_over_a_class_size_or_zero_is_refused() -> None:
    ids, labels = ["a", "b", "c", "d"], [0, 0, 0, 1]
    with pytest.raises(ValueError, match="2 samples per class requested, but class 1 has 1"):
        nested_subset_per_class(ids, labels, 2)
    for bad in (0, "0", "-3", "some"):
        with pytest.raises(ValueError, match="train_samples_per_class must be a positive"):
            parse_label_count(bad, "train_samples_per_class")
    assert parse_label_count("all", "train_samples_per_class") is None
