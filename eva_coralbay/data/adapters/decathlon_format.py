"""Any CT segmentation dataset in the Medical Segmentation Decathlon / nnU-Net raw layout."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from eva_coralbay.data.adapters import base
from eva_coralbay.data.adapters.validation import LabelPart, Problem
from eva_coralbay.tasks import vocabulary

DATASET_JSON = "dataset.json"
SPLITS_FILE = "splits_final.json"
"""nnU-Net's split file (`nnUNet_preprocessed/DatasetXXX/splits_final.json`), copied beside
dataset.json: a list of folds, each `{"train": [case ids], "val": [case ids]}`."""

_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")


class DecathlonFormat(base.SegmentationAdapter):
    """Your own CT segmentation dataset, laid out like a Decathlon task or nnU-Net raw dataset.

    Layout under `root` (or its only sub-folder that holds a dataset.json)::

        dataset.json         labels, and the training cases and/or the validation list
        imagesTr/<case>.nii.gz  or  <case>_0000.nii.gz (nnU-Net: one channel, CT)
        labelsTr/<case>.nii.gz  one label map per case, voxel values = label ids

    dataset.json's `labels` names the classes, in either form: Decathlon `{"0": "background",
    "1": "liver"}` or nnU-Net v2 `{"background": 0, "liver": 1}`; ids must be 0..N-1. Class
    names are the labels' names in lowercase snake_case, which are the canonical vocabulary's
    names where they match ("Spleen" -> "spleen"; see `canonical_names`). The cases are the
    `training` entries of dataset.json, or, when it lists none (nnU-Net v2), every label map in
    labelsTr.

    The split is never drawn at random. The validation cases are, in order of precedence:

    - `"validation": [...]` in dataset.json (an extension of the Decathlon format): case ids
      (`"liver_7"`), image or label paths (`"./imagesTr/liver_7.nii.gz"`) or entries shaped
      like the `training` ones (`{"image": ..., "label": ...}`);
    - nnU-Net's `splits_final.json` beside dataset.json, fold `fold` (default 0).

    Every other labelled case is a training case. Without either file, `configure` raises.
    """

    task_id: ClassVar[str] = "decathlon_format"
    title: ClassVar[str] = "A dataset in the Decathlon / nnU-Net raw layout"
    homepage: ClassVar[str] = "http://medicaldecathlon.com/"
    license: ClassVar[str] = "the dataset's own (see its dataset.json)"
    split_source: ClassVar[str] = (
        "the `validation` list of dataset.json, else fold `fold` of nnU-Net's splits_final.json"
    )
    native_classes: ClassVar[tuple[str, ...]] = ("background",)
    canonical_classes: ClassVar[tuple[str, ...]] = ("background",)
    expected_cases: ClassVar[dict[str, int]] = {}  # a user dataset has no reference size
    manual_download: ClassVar[str] = """
Put your dataset in the Decathlon / nnU-Net raw layout: ROOT/dataset.json with `labels` and a
`validation` list of case ids, ROOT/imagesTr/<case>.nii.gz and ROOT/labelsTr/<case>.nii.gz.
"""

    def __init__(
        self,
        root: str,
        split: str | None = None,
        transforms: Callable | None = None,
        profile: base.ProfileLike = "radiology/coralbay",
        cache: str | None = None,
        use_cache: bool = True,
        download: bool = False,
        allow_incomplete: bool = False,
        fold: int = 0,
        num_classes: int | None = None,
    ) -> None:
        """Initializes the adapter and reads the class names from dataset.json.

        Args:
            root: The folder holding dataset.json, imagesTr and labelsTr (or its parent).
            split: "train", "val", or None for every case.
            transforms: eva / torchvision v2 transforms applied to `(volume, mask)`.
            profile: The model's preprocessing profile (see `SegmentationAdapter`).
            cache: The `coralbay preprocess` cache folder (None: the default one).
            use_cache: Whether to read standardised volumes from the cache when fresh.
            download: Unused (a user dataset has no public archive); kept for a uniform
                signature.
            allow_incomplete: Skip cases whose image file is missing instead of reporting them.
            fold: The fold of splits_final.json used when dataset.json has no validation list.
            num_classes: The number of labels (with background) the config expects, e.g. the
                decoder's output channels; a dataset.json that declares another number is an
                error. None: no check.

        Raises:
            ValueError: When dataset.json is missing or unreadable, its labels malformed, or
                their number differs from `num_classes`.
        """
        super().__init__(
            root=root,
            split=split,
            transforms=transforms,
            profile=profile,
            cache=cache,
            use_cache=use_cache,
            download=download,
            allow_incomplete=allow_incomplete,
        )
        self._fold = fold
        self._task_dir = _find_task_dir(Path(root))
        self._dataset_json = _read_json(self._task_dir / DATASET_JSON)
        names = _native_names(self._dataset_json, self._task_dir / DATASET_JSON)
        if num_classes is not None and num_classes != len(names):
            raise ValueError(
                f"{self._task_dir / DATASET_JSON}: declares {len(names)} labels {names} "
                f"(background included), the config expects num_classes={num_classes}"
            )
        # Per-dataset values of what a benchmark adapter declares per class: the base class reads
        # them through `self`, and the cache keys its folder on `task_id`.
        self.native_classes = tuple(names)  # pyright: ignore[reportAttributeAccessIssue]
        try:
            canonical = canonical_names(names)
        except ValueError as error:
            raise ValueError(f"{self._task_dir / DATASET_JSON}: {error}") from None
        self.canonical_classes = canonical  # pyright: ignore[reportAttributeAccessIssue]
        self.task_id = _cache_key(self._task_dir)  # pyright: ignore[reportAttributeAccessIssue]

    @property
    def task_dir(self) -> Path:
        """The folder holding dataset.json."""
        return self._task_dir

    @property
    def dataset_name(self) -> str:
        """dataset.json's `name`, else the folder's name."""
        return str(self._dataset_json.get("name") or self._task_dir.name)

    def layout(self) -> str:
        """The layout read."""
        return "dataset.json + imagesTr/<case>[_0000].nii.gz + labelsTr/<case>.nii.gz"

    def catalogue(self) -> list[base.Case]:
        """Every labelled case with its split.

        Raises:
            ValueError: When no validation split is defined, or it names unknown cases.
        """
        cases = self._labelled_cases()
        val_ids = self._validation_ids(set(cases))
        return [
            base.Case(
                case_id=case_id,
                split="val" if case_id in val_ids else "train",
                image=image,
                labels=(LabelPart(label),),
            )
            for case_id, (image, label) in cases.items()
        ]

    def check_metadata(self) -> list[Problem]:
        """Checks that the dataset is single-channel and that both splits have cases."""
        problems = []
        path = str(self._task_dir / DATASET_JSON)
        channels = self._dataset_json.get("channel_names") or self._dataset_json.get("modality")
        if isinstance(channels, dict) and len(channels) > 1:
            problems.append(
                Problem(path, f"declares {len(channels)} input channels {channels}; CT has one")
            )
        for split_name in self.split_names:
            if self._catalogue_size.get(split_name, 0) == 0:
                problems.append(Problem(path, f"the {split_name!r} split has no cases"))
        return problems

    def _labelled_cases(self) -> dict[str, tuple[Path, Path]]:
        """Case id -> (image, label), in natural order."""
        suffix = str(self._dataset_json.get("file_ending") or ".nii.gz")
        training = self._dataset_json.get("training")
        pairs: dict[str, tuple[Path, Path]] = {}
        if isinstance(training, list) and training:
            for entry in training:
                if not isinstance(entry, dict) or "label" not in entry:
                    raise ValueError(
                        f"{self._task_dir / DATASET_JSON}: a `training` entry is not "
                        f'{{"image": ..., "label": ...}}: {entry!r}'
                    )
                label = self._task_dir / str(entry["label"])
                case_id = case_id_of(str(entry["label"]))
                image = self._image_path(
                    self._task_dir / str(entry.get("image", label)), case_id, suffix
                )
                pairs[case_id] = (image, label)
        else:
            for label in base.list_volumes(self._task_dir / "labelsTr", f"*{suffix}"):
                case_id = case_id_of(label.name)
                pairs[case_id] = (self._image_path(None, case_id, suffix), label)
        return {key: pairs[key] for key in sorted(pairs, key=base.natural_key)}

    def _image_path(self, listed: Path | None, case_id: str, suffix: str) -> Path:
        images = self._task_dir / "imagesTr"
        candidates = [listed] if listed is not None else []
        candidates += [images / f"{case_id}_0000{suffix}", images / f"{case_id}{suffix}"]
        for candidate in candidates:
            if candidate is not None and candidate.exists():
                return candidate
        # Missing: report the listed path (or nnU-Net's name), which `validate` names.
        return listed if listed is not None else images / f"{case_id}_0000{suffix}"

    def _validation_ids(self, known: set[str]) -> set[str]:
        dataset_json = self._task_dir / DATASET_JSON
        listed = self._dataset_json.get("validation")
        if listed is not None:
            if not isinstance(listed, list):
                raise ValueError(f"{dataset_json}: `validation` must be a list of case ids")
            source, val_ids = str(dataset_json), {_entry_case_id(entry) for entry in listed}
        elif (self._task_dir / SPLITS_FILE).is_file():
            source = str(self._task_dir / SPLITS_FILE)
            folds = _read_json(self._task_dir / SPLITS_FILE)
            if not isinstance(folds, list) or not 0 <= self._fold < len(folds):
                raise ValueError(
                    f"{source}: expected a list of folds holding fold {self._fold} (nnU-Net's "
                    "splits_final.json)"
                )
            val_ids = {case_id_of(str(entry)) for entry in folds[self._fold].get("val", [])}
        else:
            raise ValueError(
                f"{dataset_json}: no validation split. Add a `validation` list of case ids to "
                f"dataset.json, or put nnU-Net's {SPLITS_FILE} beside it; the cases are never "
                "split at random."
            )
        unknown = sorted(val_ids - known, key=base.natural_key)
        if unknown:
            raise ValueError(f"{source}: validation cases {unknown} are not labelled cases")
        return val_ids


def canonical_names(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Each label's name in lowercase snake_case, which is its canonical name where one exists.

    Label 0 is always "background". "Spleen" becomes the canonical "spleen"; a name outside
    the vocabulary ("Right Kidney" -> "right_kidney", canonically "kidney_right") is kept in its
    normalised form: names are not guessed.

    Raises:
        ValueError: When two labels have the same normalised name.
    """
    result = [vocabulary.BACKGROUND, *(normalise_name(name) or name for name in names[1:])]
    repeated = sorted({name for name in result if result.count(name) > 1})
    if repeated:
        raise ValueError(f"labels {list(names)} give the same class name twice: {repeated}")
    return tuple(result)


def normalise_name(name: str) -> str:
    """Lowercase snake_case: "Urinary Bladder" -> "urinary_bladder"."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def case_id_of(name: str) -> str:
    """A case id from a file name or path: no folder, no volume suffix, no `_0000` channel."""
    stem = base.strip_suffixes(Path(name).name)
    return _CHANNEL_SUFFIX.sub("", stem)


def _entry_case_id(entry: Any) -> str:
    if isinstance(entry, dict):
        return case_id_of(str(entry.get("label") or entry.get("image") or ""))
    return case_id_of(str(entry))


def _find_task_dir(root: Path) -> Path:
    if (root / DATASET_JSON).is_file():
        return root
    children = sorted(path.parent for path in root.glob(f"*/{DATASET_JSON}"))
    if len(children) == 1:
        return children[0]
    if children:
        raise ValueError(
            f"{root}: holds several datasets ({', '.join(p.name for p in children)}); "
            "point root at one of them"
        )
    raise ValueError(
        f"{root}: no {DATASET_JSON} here or in a sub-folder; a Decathlon / nnU-Net raw dataset "
        "has dataset.json, imagesTr/ and labelsTr/"
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror})") from None
    except ValueError as error:
        raise ValueError(f"{path}: malformed JSON ({error})") from None


def _native_names(dataset_json: Any, path: Path) -> list[str]:
    try:
        names = label_names(dataset_json)
        ids = _label_ids(dataset_json["labels"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(
            f'{path}: `labels` must map ids to names ({{"0": "background", "1": "liver"}}) or '
            f'names to ids ({{"background": 0, "liver": 1}}) ({error!r})'
        ) from None
    if sorted(ids) != list(range(len(ids))):
        raise ValueError(f"{path}: label ids must be 0..{len(ids) - 1}, got {sorted(ids)}")
    if len(names) < 2:
        raise ValueError(f"{path}: `labels` declares no foreground class")
    return [str(name) for name in names]


def _label_ids(labels: dict[str, Any]) -> list[int]:
    if all(isinstance(value, int) for value in labels.values()):
        return [int(value) for value in labels.values()]
    return [int(key) for key in labels]


def _cache_key(task_dir: Path) -> str:
    """A cache folder name unique to this dataset: its folder name and a digest of its path."""
    digest = hashlib.sha256(str(task_dir.resolve()).encode()).hexdigest()[:8]
    return f"decathlon_format-{normalise_name(task_dir.name) or 'dataset'}-{digest}"


def label_names(dataset_json: dict[str, Any]) -> list[str]:
    """Label names in id order, from the Decathlon ({"0": "background"}) or nnU-Net v2 form."""
    labels = dataset_json["labels"]
    if all(isinstance(value, int) for value in labels.values()):
        return [name for name, _ in sorted(labels.items(), key=lambda item: item[1])]
    return [labels[key] for key in sorted(labels, key=int)]
