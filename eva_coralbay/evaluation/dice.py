"""Per-class Dice for eva's `ClasswiseWrapper`, also when the validation split has one case."""

from __future__ import annotations

from typing import Literal

import torch
from eva.vision.metrics import MonaiDiceScore
from typing_extensions import override


class PerClassDiceScore(MonaiDiceScore):
    """eva's `MonaiDiceScore` with `reduction="none"`: one Dice per class, averaged over cases.

    eva 0.4.5 averages MONAI's `[cases, classes]` scores over the cases only when there are
    several, so a single validation case leaves a `[1, classes]` tensor that `ClasswiseWrapper`
    cannot log (Lightning raises). This always averages over the cases, ignoring NaN: as in
    MONAI, a class absent from a case's reference scores NaN for that case, and a class absent
    from every case is NaN (recorded as null in results.json).
    """

    def __init__(
        self,
        num_classes: int,
        include_background: bool = True,
        input_format: Literal["one-hot", "index"] = "one-hot",
        ignore_index: int | None = None,
    ) -> None:
        """Initializes the metric.

        Args:
            num_classes: The number of classes, background included.
            include_background: Whether class 0 is scored too.
            input_format: "one-hot" or "index" tensors.
            ignore_index: A class that does not contribute.
        """
        super().__init__(
            num_classes=num_classes,
            include_background=include_background,
            input_format=input_format,
            reduction="none",
            ignore_index=ignore_index,
        )

    @override
    def compute(self) -> torch.Tensor:
        scores = self._monai_metric.aggregate()
        assert isinstance(scores, torch.Tensor)
        return scores.nanmean(dim=0) if scores.ndim == 2 else scores
