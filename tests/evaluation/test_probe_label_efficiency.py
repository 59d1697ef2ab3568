"""The probes' label-efficiency track: eva's embeddings dataset cut to k samples per class."""

from __future__ import annotations

import pathlib

import pandas as pd
import pytest
import torch

from eva_coralbay.evaluation import EmbeddingsClassificationSubset


@pytest.fixture(scope="module")
def embeddings_root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A manifest as eva's ClassificationEmbeddingsWriter writes it: 3 classes, 2 splits."""
    root = tmp_path_factory.mktemp("embeddings")
    rows = []
    for split, count in (("train", 30), ("val", 9)):
        for index in range(count):
            origin = f"{split}_{index:05d}"
            torch.save(torch.full((1, 4), float(index)), root / f"{origin}.pt")
            rows.append([origin, f"{origin}.pt", index % 3, split])
    pd.DataFrame(rows, columns=["origin", "embeddings", "target", "split"]).to_csv(
        root / "manifest.csv", index=False
    )
    return root


def _dataset(
    root: pathlib.Path, split: str, per_class: int | str | None
) -> EmbeddingsClassificationSubset:
    dataset = EmbeddingsClassificationSubset(
        root=str(root),
        manifest_file="manifest.csv",
        split=split,  # type: ignore[arg-type]
        train_samples_per_class=per_class,
    )
    dataset.setup()
    return dataset


def _samples(dataset: EmbeddingsClassificationSubset) -> list[tuple[str, int]]:
    return [(dataset.filename(i), int(dataset[i][1])) for i in range(len(dataset))]


def test_the_train_split_keeps_k_nested_samples_per_class(embeddings_root: pathlib.Path) -> None:
    every = _samples(_dataset(embeddings_root, "train", "all"))
    assert len(every) == 30
    one, five = (set(_samples(_dataset(embeddings_root, "train", k))) for k in (1, 5))
    assert one < five < set(every)
    assert sorted(label for _, label in five) == [0] * 5 + [1] * 5 + [2] * 5
    # Another process, another order of construction: the same samples.
    assert set(_samples(_dataset(embeddings_root, "train", 5))) == five
    # The embedding loaded is the sample's own.
    dataset = _dataset(embeddings_root, "train", 1)
    for index in range(len(dataset)):
        embedding, _ = dataset[index]
        assert embedding.tolist() == [float(dataset.filename(index)[-8:-3])] * 4


def test_validation_stays_whole(embeddings_root: pathlib.Path) -> None:
    assert len(_dataset(embeddings_root, "val", 1)) == 9


def test_bad_counts_are_refused_with_the_class_named(embeddings_root: pathlib.Path) -> None:
    with pytest.raises(ValueError, match=r"train_samples_per_class=11 .* class 0 has 10"):
        _dataset(embeddings_root, "train", 11)
    with pytest.raises(ValueError, match="must be a positive integer or 'all', got 0"):
        _dataset(embeddings_root, "train", 0)
