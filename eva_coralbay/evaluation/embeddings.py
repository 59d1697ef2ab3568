"""eva's embeddings dataset of a probe, with the label-efficiency track's per-class cap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from eva.core.data.datasets.classification.embeddings import EmbeddingsClassificationDataset
from eva.core.data.datasets.embeddings import default_column_mapping
from typing_extensions import override

from eva_coralbay.data.adapters.base import nested_subset_per_class, parse_label_count

ORIGIN_COLUMN = "origin"
"""The manifest column eva's embeddings writer fills with each sample's `filename`: the id the
per-class subset is drawn from (`train_00012`, `<case>/<organ>`, `<series>/<annotation>.mha`)."""


class EmbeddingsClassificationSubset(EmbeddingsClassificationDataset):
    """eva's `EmbeddingsClassificationDataset` that may train on a few samples per class.

    With `train_samples_per_class` = k, the train split keeps the first k samples of every class
    in a fixed order of their ids (`nested_subset_per_class`): the 5-per-class set holds the
    1-per-class set, and every model gets the same samples. Validation and test are never cut,
    so one set of arguments serves all splits. With "all" (the default) it is eva's dataset.
    """

    def __init__(
        self,
        root: str,
        manifest_file: str,
        split: Literal["train", "val", "test"] | None = None,
        column_mapping: dict[str, str] = default_column_mapping,
        embeddings_transforms: Callable | None = None,
        target_transforms: Callable | None = None,
        train_samples_per_class: int | str | None = None,
    ) -> None:
        """Initializes the dataset.

        Args:
            root: The embeddings folder (eva's `ClassificationEmbeddingsWriter` output).
            manifest_file: The manifest, relative to `root`.
            split: The split to read.
            column_mapping: eva's map of variables to manifest columns.
            embeddings_transforms: Applied to each embedding.
            target_transforms: Applied to each target.
            train_samples_per_class: Train on this many samples of each class (a positive
                integer), or "all" / None for every one.

        Raises:
            ValueError: For a count that is not a positive integer or "all".
        """
        super().__init__(
            root=root,
            manifest_file=manifest_file,
            split=split,
            column_mapping=column_mapping,
            embeddings_transforms=embeddings_transforms,
            target_transforms=target_transforms,
        )
        self._samples_per_class = parse_label_count(
            train_samples_per_class, "train_samples_per_class"
        )

    @override
    def setup(self) -> None:
        super().setup()
        if self._split != "train" or self._samples_per_class is None:
            return
        data = self._data
        ids = [str(sample_id) for sample_id in data[ORIGIN_COLUMN]]
        if len(set(ids)) != len(ids):
            raise ValueError(
                f"{self._root}/{self._manifest_file}: the {ORIGIN_COLUMN!r} column repeats "
                "sample ids, so no per-class subset can be drawn from it"
            )
        labels = [int(label) for label in data[self._column_mapping["target"]]]
        try:
            kept = set(nested_subset_per_class(ids, labels, self._samples_per_class))
        except ValueError as error:
            raise ValueError(
                f"train_samples_per_class={self._samples_per_class} for the embeddings at "
                f"{self._root}: {error}"
            ) from None
        self._data = data.loc[[sample_id in kept for sample_id in ids]].reset_index(drop=True)
