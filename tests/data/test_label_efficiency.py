"""The label-efficiency track: nested, deterministic training subsets of a segmentation task."""

from __future__ import annotations

import pathlib

import pytest

from eva_coralbay.data.adapters import DecathlonFormat, MSDSpleen
from eva_coralbay.data.adapters.base import nested_subset, parse_train_cases
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
