"""Any CT segmentation dataset in the Medical Segmentation Decathlon / nnU-Net raw layout."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from typing_extensions import override

from eva_coralbay.data.adapters import base
from eva_coralbay.data.adapters.validation import LabelPart, Problem
from eva_coralbay.tasks import vocabulary

DATASET_JSON = "dataset.json"
SPLITS_FILE = "splits_final.json"
"""nnU-Net's split file (`nnUNet_preprocessed/DatasetXXX/splits_final.json`), copied beside
dataset.json: a list of folds, each `{"train": [case ids], "val": [case ids]}`."""

_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")


class MetadataError(ValueError):
    """A metadata file (dataset.json, splits_final.json) that cannot be used; `str` names it."""

    def __init__(self, path: Path, reason: str) -> None:
        """Initializes the error.

        Args:
            path: The file.
            reason: What is wrong with it.
        """
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def problem(self) -> Problem:
        """The error as a validation problem, for adapters that report rather than raise."""
        return Problem(str(self.path), self.reason)


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
    labelsTr; macOS "._" files are ignored.

    The split is never drawn at random. The validation cases are, in order of precedence:

    - `"validation": [...]` in dataset.json (an extension of the Decathlon format): case ids
      (`"liver_7"`), image or label paths (`"./imagesTr/liver_7.nii.gz"`) or entries shaped
      like the `training` ones (`{"image": ..., "label": ...}`);
    - nnU-Net's `splits_final.json` beside dataset.json, fold `fold` (default 0).

    Every other labelled case is a training case. Without either file, `configure` raises.

    A public benchmark in this layout (the Decathlon tasks, see `msd.MSDAdapter`) is a subclass
    that fixes what a user dataset declares: the task folder, the class map and the validation
    cases (the hooks `task_dir`, `bind_dataset`, `dataset_json` and `validation_ids`).
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
        train_cases: int | str | None = None,
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
            train_cases: Train on this many cases only (see `SegmentationAdapter`).
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
            train_cases=train_cases,
        )
        self._fold = fold
        self.bind_dataset(num_classes)

    # ----------------------------------------------------------------------------------------
    # What a benchmark in this layout fixes instead of reading it (see `msd.MSDAdapter`).

    @property
    def task_dir(self) -> Path:
        """The folder holding dataset.json: `root`, or its only sub-folder that holds one.

        Raises:
            MetadataError: When there is no such folder, or several.
        """
        return find_task_dir(self.root)

    def bind_dataset(self, num_classes: int | None) -> None:
        """Takes what a user dataset declares itself: its class names and its cache key.

        Args:
            num_classes: The number of labels the config expects; None: no check.

        Raises:
            ValueError: When dataset.json is missing or unreadable, its labels malformed, or
                their number differs from `num_classes`.
        """
        task_dir = self.task_dir
        path = task_dir / DATASET_JSON
        names = label_names(self.dataset_json(task_dir), path)
        if num_classes is not None and num_classes != len(names):
            raise MetadataError(
                path,
                f"declares {len(names)} labels {names} (background included), the config "
                f"expects num_classes={num_classes}",
            )
        try:
            canonical = canonical_names(names)
        except ValueError as error:
            raise MetadataError(path, str(error)) from None
        # Per-dataset values of what a benchmark adapter declares per class: the base class reads
        # them through `self`, and the cache keys its folder on `task_id`.
        self.native_classes = tuple(names)  # pyright: ignore[reportAttributeAccessIssue]
        self.canonical_classes = canonical  # pyright: ignore[reportAttributeAccessIssue]
        self.task_id = _cache_key(task_dir)  # pyright: ignore[reportAttributeAccessIssue]

    def dataset_json(self, task_dir: Path) -> dict[str, Any]:
        """The task folder's dataset.json, parsed.

        Raises:
            MetadataError: When it is missing, unreadable or not a JSON object.
        """
        return read_dataset_json(task_dir)

    def validation_ids(
        self, task_dir: Path, dataset_json: dict[str, Any], known: set[str]
    ) -> set[str]:
        """The validation cases: dataset.json's `validation` list, else nnU-Net's split file.

        Args:
            task_dir: The folder holding dataset.json.
            dataset_json: Its content.
            known: The labelled cases' ids.

        Raises:
            MetadataError: When no validation split is defined, or it names unknown cases.
        """
        listed = dataset_json.get("validation")
        if listed is not None:
            source = task_dir / DATASET_JSON
            if not isinstance(listed, list):
                raise MetadataError(source, "`validation` must be a list of case ids")
            val_ids = {_entry_case_id(entry) for entry in listed}
        elif (task_dir / SPLITS_FILE).is_file():
            source = task_dir / SPLITS_FILE
            folds = read_json(source)
            if not isinstance(folds, list) or not 0 <= self._fold < len(folds):
                raise MetadataError(
                    source,
                    f"expected a list of folds holding fold {self._fold} (nnU-Net's "
                    "splits_final.json)",
                )
            val_ids = {case_id_of(str(entry)) for entry in folds[self._fold].get("val", [])}
        else:
            raise MetadataError(
                task_dir / DATASET_JSON,
                f"no validation split. Add a `validation` list of case ids to dataset.json, or "
                f"put nnU-Net's {SPLITS_FILE} beside it; the cases are never split at random.",
            )
        unknown = sorted(val_ids - known, key=base.natural_key)
        if unknown:
            raise MetadataError(source, f"validation cases {unknown} are not labelled cases")
        return val_ids

    # ----------------------------------------------------------------------------------------
    # The layout, read the same way for every dataset.

    @property
    def dataset_name(self) -> str:
        """dataset.json's `name`, else the folder's name."""
        task_dir = self.task_dir
        return str(self.dataset_json(task_dir).get("name") or task_dir.name)

    @override
    def layout(self) -> str:
        """The layout read."""
        return "dataset.json + imagesTr/<case>[_0000].nii.gz + labelsTr/<case>.nii.gz"

    @override
    def catalogue(self) -> list[base.Case]:
        """Every labelled case with its split, plus validation cases a fixed split names.

        Raises:
            ValueError: When no validation split is defined, or it names unknown cases.
        """
        task_dir = self.task_dir
        dataset_json = self.dataset_json(task_dir)
        cases = self.labelled_cases(task_dir, dataset_json)
        val_ids = self.validation_ids(task_dir, dataset_json, set(cases))
        suffix = file_ending(dataset_json)
        for case_id in val_ids - cases.keys():
            # Only a fixed split names cases that are not there: listed with the Decathlon's file
            # names, so that `validate` reports them missing.
            listed = task_dir / "imagesTr" / f"{case_id}{suffix}"
            label = task_dir / "labelsTr" / f"{case_id}{suffix}"
            cases[case_id] = (image_path(task_dir, listed, case_id, suffix), label)
        return [
            base.Case(
                case_id=case_id,
                split="val" if case_id in val_ids else "train",
                image=cases[case_id][0],
                labels=(LabelPart(cases[case_id][1]),),
            )
            for case_id in sorted(cases, key=base.natural_key)
        ]

    @override
    def check_metadata(self) -> list[Problem]:
        """Checks that the dataset is single-channel and that both splits have cases."""
        problems = []
        task_dir = self.task_dir
        path = str(task_dir / DATASET_JSON)
        dataset_json = self.dataset_json(task_dir)
        channels = dataset_json.get("channel_names") or dataset_json.get("modality")
        if isinstance(channels, dict) and len(channels) > 1:
            problems.append(
                Problem(path, f"declares {len(channels)} input channels {channels}; CT has one")
            )
        for split_name in self.split_names:
            if self._catalogue_size.get(split_name, 0) == 0:
                problems.append(Problem(path, f"the {split_name!r} split has no cases"))
        return problems

    def labelled_cases(
        self, task_dir: Path, dataset_json: dict[str, Any]
    ) -> dict[str, tuple[Path, Path]]:
        """Case id -> (image, label) of the `training` entries, else of the maps in labelsTr.

        Args:
            task_dir: The folder holding dataset.json.
            dataset_json: Its content ({} reads labelsTr).

        Raises:
            MetadataError: When a `training` entry is not `{"image": ..., "label": ...}`.
        """
        suffix = file_ending(dataset_json)
        training = dataset_json.get("training")
        pairs: dict[str, tuple[Path, Path]] = {}
        if isinstance(training, list) and training:
            for entry in training:
                if not isinstance(entry, dict) or "label" not in entry:
                    raise MetadataError(
                        task_dir / DATASET_JSON,
                        f'a `training` entry is not {{"image": ..., "label": ...}}: {entry!r}',
                    )
                if Path(str(entry["label"])).name.startswith("."):
                    continue  # a macOS "._" twin, as `base.list_volumes` skips on disk
                label = task_dir / str(entry["label"])
                case_id = case_id_of(str(entry["label"]))
                listed = task_dir / str(entry.get("image", label))
                pairs[case_id] = (image_path(task_dir, listed, case_id, suffix), label)
        else:
            for label in base.list_volumes(task_dir / "labelsTr", f"*{suffix}"):
                case_id = case_id_of(label.name)
                pairs[case_id] = (image_path(task_dir, None, case_id, suffix), label)
        return pairs


def find_task_dir(root: Path) -> Path:
    """`root` when it holds a dataset.json, else its only sub-folder that does.

    Raises:
        MetadataError: When there is none, or several.
    """
    if (root / DATASET_JSON).is_file():
        return root
    children = sorted(path.parent for path in root.glob(f"*/{DATASET_JSON}"))
    if len(children) == 1:
        return children[0]
    if children:
        raise MetadataError(
            root,
            f"holds several datasets ({', '.join(p.name for p in children)}); point root at "
            "one of them",
        )
    raise MetadataError(
        root,
        f"no {DATASET_JSON} here or in a sub-folder; a Decathlon / nnU-Net raw dataset has "
        "dataset.json, imagesTr/ and labelsTr/",
    )


def read_json(path: Path) -> Any:
    """A JSON file's content.

    Raises:
        MetadataError: When it cannot be read or parsed.
    """
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise MetadataError(path, f"cannot read ({error.strerror})") from None
    except ValueError as error:
        raise MetadataError(path, f"malformed JSON ({error})") from None


def read_dataset_json(task_dir: Path) -> dict[str, Any]:
    """A task folder's dataset.json.

    Raises:
        MetadataError: When it is missing, unreadable or not a JSON object.
    """
    path = task_dir / DATASET_JSON
    content = read_json(path)
    if not isinstance(content, dict):
        raise MetadataError(path, f"not a JSON object but a {type(content).__name__}")
    return content


def label_names(dataset_json: dict[str, Any], path: Path) -> list[str]:
    """Label names in id order, from the Decathlon ({"0": "background"}) or nnU-Net v2 form.

    Args:
        dataset_json: The content of dataset.json.
        path: Its path, which errors name.

    Raises:
        MetadataError: When `labels` is missing or malformed, its ids are not 0..N-1, or it
            declares no foreground class.
    """
    try:
        labels = dataset_json["labels"]
        if all(isinstance(value, int) for value in labels.values()):
            pairs = [(int(value), str(name)) for name, value in labels.items()]
        else:
            pairs = [(int(key), str(name)) for key, name in labels.items()]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise MetadataError(
            path,
            f'`labels` must map ids to names ({{"0": "background", "1": "liver"}}) or names to '
            f'ids ({{"background": 0, "liver": 1}}) ({error!r})',
        ) from None
    ids = sorted(label_id for label_id, _ in pairs)
    if ids != list(range(len(ids))):
        raise MetadataError(path, f"label ids must be 0..{len(ids) - 1}, got {ids}")
    if len(ids) < 2:
        raise MetadataError(path, "`labels` declares no foreground class")
    return [name for _, name in sorted(pairs)]


def file_ending(dataset_json: dict[str, Any]) -> str:
    """The volumes' suffix: nnU-Net v2's `file_ending`, else the Decathlon's ".nii.gz"."""
    return str(dataset_json.get("file_ending") or ".nii.gz")


def image_path(task_dir: Path, listed: Path | None, case_id: str, suffix: str) -> Path:
    """A case's image: the listed path, else nnU-Net's `<case>_0000`, else `<case>`.

    Args:
        task_dir: The folder holding imagesTr.
        listed: The path dataset.json gives, if any.
        case_id: The case.
        suffix: The volumes' suffix (see `file_ending`).

    Returns:
        The first candidate that exists; when none does, the listed path (or nnU-Net's name),
        which `validate` then reports missing.
    """
    images = task_dir / "imagesTr"
    candidates = [] if listed is None else [listed]
    candidates += [images / f"{case_id}_0000{suffix}", images / f"{case_id}{suffix}"]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[0]


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
    """A case id from a file name or path: no folder, no volume suffix, no `_0000` channel.

    Only image files (under imagesTr/ or imagesTs/) carry nnU-Net's channel suffix; a label
    file or a bare id ending in four digits (`case_0001`) keeps them: they are the case id.
    """
    path = Path(name)
    stem = base.strip_suffixes(path.name)
    if path.parent.name in ("imagesTr", "imagesTs"):
        return _CHANNEL_SUFFIX.sub("", stem)
    return stem


def _entry_case_id(entry: Any) -> str:
    if isinstance(entry, dict):
        return case_id_of(str(entry.get("label") or entry.get("image") or ""))
    return case_id_of(str(entry))


def _cache_key(task_dir: Path) -> str:
    """A cache folder name unique to this dataset: its folder name and a digest of its path."""
    digest = hashlib.sha256(str(task_dir.resolve()).encode()).hexdigest()[:8]
    return f"decathlon_format-{normalise_name(task_dir.name) or 'dataset'}-{digest}"
