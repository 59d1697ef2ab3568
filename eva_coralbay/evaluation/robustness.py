"""The robustness track: how whole-scan embeddings and probes move under window, grid, flips."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import math
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from eva_coralbay.data.profile import PreprocessingProfile
from eva_coralbay.leaderboard.robustness_record import RECORD_TYPE, SCHEMA_VERSION

if TYPE_CHECKING:
    import torch
    from monai.data.meta_tensor import MetaTensor
    from torch import nn

CENTRE_SHIFT_HU = 100.0
"""How far the window's centre moves, each way."""

WIDTH_FACTORS = (0.75, 1.5)
"""How the window's width is scaled about its centre."""

COMMON_WINDOWS: Mapping[str, tuple[float, float]] = {
    "soft_tissue": (-160.0, 240.0),
    "lung": (-1350.0, 150.0),
}
"""Windows radiologists read CT with (centre 40 / width 400 and centre -600 / width 1500)."""

SPACINGS_MM = (1.0, 2.0)
"""Isotropic grids the scan is resampled to instead of the model's own spacing."""

INPUT_ORIENTATIONS = ("RAS", "LPS")
"""Orientations the scan is handed over in before the profile; the profile must undo both."""

FLIP_AXES: Mapping[str, str] = {"left_right": "LR", "superior_inferior": "SI"}
"""Mirrorings of the standardised volume, by the anatomical axis they reverse."""

PerturbationKind = Literal["window", "spacing", "orientation", "flip"]


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """One change to how a scan reaches the encoder; the unperturbed way is the model's profile.

    Exactly one of `window`, `spacing`, `input_orientation` and `flip` is set, matching `kind`.
    """

    name: str
    """A stable identifier, e.g. `window_centre_plus_100` or `flip_left_right`."""

    kind: PerturbationKind
    """What is changed."""

    window: tuple[float, float] | None = None
    """The HU window [low, high] that replaces the profile's (scaled onto the same output)."""

    spacing: float | None = None
    """The isotropic spacing in mm that replaces the profile's."""

    input_orientation: str | None = None
    """Axis codes the scan is reoriented to before the profile (which reorients it back)."""

    flip: str | None = None
    """The anatomical axis ("LR", "AP" or "SI") along which the standardised volume is
    mirrored."""

    def __post_init__(self) -> None:
        """Rejects a window whose low end is not below its high end, naming the perturbation."""
        if self.window is not None:
            low, high = (float(value) for value in self.window)
            if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
                raise ValueError(
                    f"{self.name}: a window needs min < max (finite HU), got [{low:g}, {high:g}]"
                )
            object.__setattr__(self, "window", (low, high))

    def profile(self, base: PreprocessingProfile) -> PreprocessingProfile:
        """The profile the perturbed scan is standardised with: `base` with one field changed."""
        if self.window is not None:
            return dataclasses.replace(base, intensity_range=self.window)
        if self.spacing is not None:
            return dataclasses.replace(base, spacing=(self.spacing,) * 3)
        return base

    def parameters(self) -> dict[str, Any]:
        """What this perturbation sets, as JSON (`intensity_range`, `spacing`, ...)."""
        if self.window is not None:
            return {"intensity_range": list(self.window)}
        if self.spacing is not None:
            return {"spacing": [self.spacing] * 3}
        if self.input_orientation is not None:
            return {"input_orientation": self.input_orientation}
        return {"flip": self.flip}


def window_perturbation(low: float, high: float, name: str | None = None) -> Perturbation:
    """A perturbation that reads the scan through the HU window [low, high].

    Raises:
        ValueError: When low >= high.
    """
    return Perturbation(
        name=name or f"window_{low:g}_{high:g}", kind="window", window=(float(low), float(high))
    )


def parse_window(text: str) -> tuple[float, float]:
    """`LOW,HIGH` (HU) as a window.

    Raises:
        ValueError: For anything but two numbers with LOW < HIGH.
    """
    parts = [part.strip() for part in text.split(",")]
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        raise ValueError(f"window {text!r}: expected LOW,HIGH in HU, e.g. -160,240") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(f"window {text!r}: min {low:g} must be below max {high:g}")
    return low, high


def default_perturbations(
    profile: PreprocessingProfile, extra_windows: Sequence[tuple[float, float]] = ()
) -> list[Perturbation]:
    """The robustness track's perturbations of a model's profile, plus any extra windows.

    Windows: the profile's centre ±100 HU, its width x0.75 and x1.5, the soft-tissue and lung
    windows; grids: 1.0 and 2.0 mm; input orientations RAS and LPS; left-right and
    superior-inferior flips.

    Raises:
        ValueError: For an extra window with min >= max.
    """
    low, high = profile.intensity_range
    centre, half_width = (low + high) / 2, (high - low) / 2
    windows = [
        window_perturbation(
            low - CENTRE_SHIFT_HU, high - CENTRE_SHIFT_HU, "window_centre_minus_100"
        ),
        window_perturbation(
            low + CENTRE_SHIFT_HU, high + CENTRE_SHIFT_HU, "window_centre_plus_100"
        ),
        *(
            window_perturbation(
                centre - half_width * factor,
                centre + half_width * factor,
                f"window_width_x{factor:g}",
            )
            for factor in WIDTH_FACTORS
        ),
        *(
            window_perturbation(*window, f"window_{name}")
            for name, window in COMMON_WINDOWS.items()
        ),
        *(window_perturbation(*window) for window in extra_windows),
    ]
    return [
        *windows,
        *(Perturbation(f"spacing_{mm:g}mm", "spacing", spacing=mm) for mm in SPACINGS_MM),
        *(
            Perturbation(f"input_{codes.lower()}", "orientation", input_orientation=codes)
            for codes in INPUT_ORIENTATIONS
        ),
        *(Perturbation(f"flip_{name}", "flip", flip=axis) for name, axis in FLIP_AXES.items()),
    ]


def select(perturbations: Sequence[Perturbation], names: str) -> list[Perturbation]:
    """The perturbations named in a comma-separated list of names or kinds ("all": every one).

    Raises:
        ValueError: For a name that is neither a perturbation nor a kind; lists the known ones.
    """
    wanted = [item.strip() for item in names.split(",") if item.strip()]
    if not wanted or wanted == ["all"]:
        return list(perturbations)
    known = {item.name for item in perturbations} | {item.kind for item in perturbations}
    unknown = [item for item in wanted if item not in known]
    if unknown:
        raise ValueError(
            f"unknown perturbation {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return [item for item in perturbations if item.name in wanted or item.kind in wanted]


def standardise(
    source: MetaTensor, profile: PreprocessingProfile, perturbation: Perturbation | None = None
) -> MetaTensor:
    """A scan as the encoder sees it: through the model's profile, perturbed or not.

    Args:
        source: The scan as read (`data.readers.read_scan`), in HU.
        profile: The model's own profile.
        perturbation: What to change; None for the unperturbed way.
    """
    from monai.transforms.spatial.array import Flip, Orientation

    if perturbation is not None and perturbation.input_orientation is not None:
        reorient = Orientation(axcodes=perturbation.input_orientation, labels=None)
        source = cast("MetaTensor", reorient(source))
    applied = profile if perturbation is None else perturbation.profile(profile)
    volume, _ = applied.apply(source)
    if perturbation is not None and perturbation.flip is not None:
        axis = next(
            index for index, letter in enumerate(applied.orientation) if letter in perturbation.flip
        )
        volume = cast("MetaTensor", Flip(spatial_axis=axis)(volume))
    return volume


@dataclasses.dataclass(frozen=True)
class ScanSource:
    """A scan to measure: its name in the record, its file or folder, and how it is read."""

    name: str
    """How the record names the scan (its path)."""

    path: pathlib.Path
    """The file or folder whose bytes the record's `content_sha256` covers."""

    read: Callable[[], MetaTensor]
    """Reads the scan, `[1, X, Y, Z]` in HU with its affine (`data.readers.read_scan` for a
    file; a benchmark's own reader for a layout without HU, such as CC-CCII's slices)."""

    @classmethod
    def of(cls, scan: str | os.PathLike[str] | ScanSource) -> ScanSource:
        """A scan file or DICOM folder read by the data readers (a source stays as it is)."""
        if isinstance(scan, ScanSource):
            return scan
        from eva_coralbay.data.readers import read_scan

        path = pathlib.Path(scan)
        return cls(str(scan), path, lambda: read_scan(path))


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What `measure` found: the scans, each perturbation's cosines and the orientation check."""

    scans: list[dict[str, Any]]
    """Each scan's path, content SHA-256, shape and spacing as read, and standardised shape."""

    perturbations: list[dict[str, Any]]
    """Per perturbation: name, kind, parameters, mean and minimum cosine, per-scan rows."""

    orientation_identical: bool | None
    """Whether every orientation perturbation gave the unperturbed voxels (None: not measured)."""

    embedding_dim: int
    """Length of the embeddings compared."""

    reference_embeddings: torch.Tensor | None = dataclasses.field(default=None, repr=False)
    """`[scans, dim]` float64: each scan's unperturbed embedding, in the order of `scans`."""

    perturbed_embeddings: Mapping[str, torch.Tensor] = dataclasses.field(
        default_factory=dict, repr=False
    )
    """Per perturbation name, `[scans, dim]` float64: each scan's perturbed embedding."""


@dataclasses.dataclass(frozen=True)
class EmbeddingSettings:
    """How whole scans are embedded (`data.embed.embed_volume`'s sliding windows)."""

    roi_size: tuple[int, int, int] = (96, 96, 96)
    overlap: float = 0.5
    sw_batch_size: int = 2
    precision: str = "fp32"
    device: str = "cpu"


def measure(
    encoder: nn.Module,
    profile: PreprocessingProfile,
    scans: Sequence[str | os.PathLike[str] | ScanSource],
    perturbations: Sequence[Perturbation],
    settings: EmbeddingSettings = EmbeddingSettings(),
    on_scan: Callable[[str], None] | None = None,
) -> Measurement:
    """Embeds every scan unperturbed and under every perturbation, and compares them.

    Args:
        encoder: See `data.embed.embed_volume`.
        profile: The model's own preprocessing profile.
        scans: The scans (files, DICOM folders, or sources read by a benchmark's reader).
        perturbations: What to change (`default_perturbations`).
        settings: The sliding windows.
        on_scan: Called with each scan's name before it is read (progress).

    Returns:
        The measured part of a robustness record, with the embeddings themselves.

    Raises:
        ScanReadError: Naming the first scan that cannot be read.
    """
    import torch

    from eva_coralbay.data.scans import content_hash

    scan_facts: list[dict[str, Any]] = []
    embedding_dim = 0
    per_scan: dict[str, list[dict[str, Any]]] = {item.name: [] for item in perturbations}
    references: list[torch.Tensor] = []
    perturbed_embeddings: dict[str, list[torch.Tensor]] = {item.name: [] for item in perturbations}
    for scan in map(ScanSource.of, scans):
        if on_scan is not None:
            on_scan(scan.name)
        source = scan.read()
        reference_volume = standardise(source, profile)
        reference = _embedding(encoder, reference_volume, profile, settings)
        references.append(reference)
        embedding_dim = int(reference.numel())
        scan_facts.append(
            {
                "scan": scan.name,
                "content_sha256": content_hash(scan.path),
                "source_shape": [int(size) for size in source.shape[1:]],
                "source_spacing": [float(value) for value in source.meta["spacing"]],
                "shape": [int(size) for size in reference_volume.shape[1:]],
            }
        )
        for item in perturbations:
            volume = standardise(source, profile, item)
            perturbed = _embedding(encoder, volume, item.profile(profile), settings)
            perturbed_embeddings[item.name].append(perturbed)
            cosine = torch.nn.functional.cosine_similarity(reference, perturbed, dim=0)
            row: dict[str, Any] = {"scan": scan.name, "cosine": _clamped(float(cosine))}
            if item.kind == "orientation":
                # The profile reorients every input to its own axes: the voxels must not move.
                same_grid = tuple(volume.shape) == tuple(reference_volume.shape)
                row["identical_after_profile"] = same_grid and bool(
                    torch.equal(volume.as_tensor(), reference_volume.as_tensor())
                )
                row["max_abs_voxel_difference"] = (
                    float((volume.as_tensor() - reference_volume.as_tensor()).abs().max())
                    if same_grid
                    else None
                )
            per_scan[item.name].append(row)
    results = []
    for item in perturbations:
        cosines = [row["cosine"] for row in per_scan[item.name]]
        results.append(
            {
                "name": item.name,
                "kind": item.kind,
                "parameters": item.parameters(),
                "mean_cosine": math.fsum(cosines) / len(cosines) if cosines else None,
                "min_cosine": min(cosines) if cosines else None,
                "per_scan": per_scan[item.name],
            }
        )
    orientation_rows = [
        row for item in perturbations if item.kind == "orientation" for row in per_scan[item.name]
    ]
    return Measurement(
        scans=scan_facts,
        perturbations=results,
        orientation_identical=(
            all(row["identical_after_profile"] for row in orientation_rows)
            if orientation_rows
            else None
        ),
        embedding_dim=embedding_dim,
        reference_embeddings=torch.stack(references) if references else None,
        perturbed_embeddings={
            name: torch.stack(rows) for name, rows in perturbed_embeddings.items() if rows
        },
    )


def embed_scans(
    encoder: nn.Module,
    profile: PreprocessingProfile,
    scans: Sequence[str | os.PathLike[str] | ScanSource],
    settings: EmbeddingSettings = EmbeddingSettings(),
    on_scan: Callable[[str], None] | None = None,
) -> torch.Tensor:
    """Each scan's unperturbed whole-scan embedding, `[scans, dim]` float64 (a probe's data).

    Raises:
        ScanReadError: Naming the first scan that cannot be read.
    """
    import torch

    vectors = []
    for scan in map(ScanSource.of, scans):
        if on_scan is not None:
            on_scan(scan.name)
        vectors.append(_embedding(encoder, standardise(scan.read(), profile), profile, settings))
    return torch.stack(vectors)


def _embedding(
    encoder: nn.Module,
    volume: torch.Tensor,
    applied: PreprocessingProfile,
    settings: EmbeddingSettings,
) -> torch.Tensor:
    """One standardised scan's pooled embedding, float64 on the CPU."""
    from eva_coralbay.data.embed import embed_volume

    return (
        embed_volume(
            encoder,
            volume,
            roi_size=settings.roi_size,
            overlap=settings.overlap,
            sw_batch_size=settings.sw_batch_size,
            # Air lands at the window's low end: what a window pads with.
            pad_value=applied.output_range[0],
            precision=settings.precision,
            device=settings.device,
        )
        .double()
        .cpu()
    )


PROBE_METHOD = (
    "multinomial logistic regression on the unperturbed training embeddings, standardised "
    "with the training mean and deviation; L2 penalty 1/(2n)|W|^2 (scikit-learn's C=1); "
    "full-batch L-BFGS in float64 from zero weights"
)
"""How the robustness probe is fit, as the record states it."""


@dataclasses.dataclass(frozen=True)
class LabelledScans:
    """A scan-labelled dataset's scans: the probe fits on `train`, the track measures `val`."""

    classes: list[str]
    train: list[ScanSource]
    train_targets: list[int]
    val: list[ScanSource]
    val_targets: list[int]


class LinearProbe:
    """A deterministic multinomial logistic regression on embeddings (the robustness probe).

    The same data give the same weights on any machine: zero start, full-batch L-BFGS in
    float64, no sampling. Features are standardised with the training statistics (a feature
    constant on the training scans is left unscaled), so the L2 penalty treats every feature
    alike whatever the encoder's scale.
    """

    def __init__(self, mean: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor) -> None:
        """Holds a fitted probe; use `fit`."""
        self.mean, self.scale, self.weight = mean, scale, weight

    @classmethod
    def fit(cls, features: torch.Tensor, targets: Sequence[int], num_classes: int) -> LinearProbe:
        """Fits the probe to `[n, dim]` features and their class indices.

        Raises:
            ValueError: Without training samples, or for a target outside 0..num_classes-1.
        """
        import torch

        if len(targets) == 0 or features.shape[0] != len(targets):
            raise ValueError(
                f"the probe needs one target per training embedding, got {features.shape[0]} "
                f"embeddings and {len(targets)} targets"
            )
        if not all(0 <= target < num_classes for target in targets):
            raise ValueError(f"targets must be class indices 0..{num_classes - 1}")
        data = features.detach().to("cpu", torch.float64)
        mean = data.mean(dim=0)
        scale = data.std(dim=0, unbiased=False)
        scale = torch.where(scale > 1e-12, scale, torch.ones_like(scale))
        inputs = torch.cat(
            [(data - mean) / scale, torch.ones(len(data), 1, dtype=torch.float64)], 1
        )
        labels = torch.as_tensor(list(targets), dtype=torch.long)
        weight = torch.zeros(inputs.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [weight],
            lr=1.0,
            max_iter=1000,
            tolerance_grad=1e-10,
            tolerance_change=1e-12,
            history_size=20,
            line_search_fn="strong_wolfe",
        )
        penalty = 1.0 / (2.0 * len(labels))

        def loss() -> torch.Tensor:
            optimizer.zero_grad()
            value = torch.nn.functional.cross_entropy(inputs @ weight, labels)
            value = value + penalty * weight[:-1].pow(2).sum()  # the bias row is not penalised
            value.backward()
            return value

        optimizer.step(loss)
        return cls(mean, scale, weight.detach())

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """The most likely class of each of `[n, dim]` features."""
        import torch

        data = (features.detach().to("cpu", torch.float64) - self.mean) / self.scale
        return (_with_bias(data) @ self.weight).argmax(dim=1)


def _with_bias(data: torch.Tensor) -> torch.Tensor:
    """`[n, dim]` features with a column of ones appended (the probe's bias input)."""
    import torch

    return torch.cat([data, torch.ones(len(data), 1, dtype=data.dtype)], dim=1)


def balanced_accuracy(predicted: torch.Tensor, targets: Sequence[int]) -> float:
    """The mean recall over the classes that occur in `targets` (scikit-learn's definition)."""
    truth = [int(target) for target in targets]
    guesses = [int(value) for value in predicted.tolist()]
    recalls = []
    for label in sorted(set(truth)):
        hits = [
            guess == label for guess, target in zip(guesses, truth, strict=True) if target == label
        ]
        recalls.append(sum(hits) / len(hits))
    return math.fsum(recalls) / len(recalls)


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """The probe's part of a robustness record."""

    summary: dict[str, Any]
    """The record's top-level `probe`: unperturbed balanced accuracy, sizes, classes, method."""

    per_perturbation: dict[str, dict[str, float]]
    """Per perturbation name, its `probe`: `balanced_accuracy` and `change`."""


def probe_change(
    measured: Measurement,
    train_embeddings: torch.Tensor,
    labelled: LabelledScans,
) -> ProbeResult:
    """Fits the probe on the unperturbed training embeddings and scores every perturbation.

    Args:
        measured: `measure`'s result on `labelled.val`, in that order.
        train_embeddings: `embed_scans` of `labelled.train`.
        labelled: The scans, targets and classes.

    Raises:
        ValueError: When the measured scans are not the validation scans, or a split is empty.
    """
    if measured.reference_embeddings is None or not labelled.val_targets:
        raise ValueError("the probe needs validation scans to score")
    if measured.reference_embeddings.shape[0] != len(labelled.val_targets):
        raise ValueError(
            f"{measured.reference_embeddings.shape[0]} measured scans, but "
            f"{len(labelled.val_targets)} validation targets"
        )
    probe = LinearProbe.fit(train_embeddings, labelled.train_targets, len(labelled.classes))
    reference = balanced_accuracy(
        probe.predict(measured.reference_embeddings), labelled.val_targets
    )
    per_perturbation = {}
    for name, embeddings in measured.perturbed_embeddings.items():
        accuracy = balanced_accuracy(probe.predict(embeddings), labelled.val_targets)
        per_perturbation[name] = {"balanced_accuracy": accuracy, "change": accuracy - reference}
    return ProbeResult(
        summary={
            "balanced_accuracy": reference,
            "train_scans": len(labelled.train_targets),
            "val_scans": len(labelled.val_targets),
            "classes": list(labelled.classes),
            "method": PROBE_METHOD,
        },
        per_perturbation=per_perturbation,
    )


def _clamped(cosine: float) -> float:
    """A cosine in [-1, 1]: float rounding may put an identical pair a hair above 1."""
    return min(max(cosine, -1.0), 1.0)


def build_record(
    measured: Measurement,
    *,
    model: str,
    checkpoint: str | None,
    checkpoint_sha256: str,
    profile: PreprocessingProfile,
    settings: EmbeddingSettings,
    task: Mapping[str, str] | None = None,
    probe: ProbeResult | None = None,
    date: datetime.date | None = None,
) -> dict[str, Any]:
    """A complete robustness record: `measure`'s results and what they were measured with.

    Args:
        measured: What `measure` returned.
        model: The registry name.
        checkpoint: The weights given instead of the model's own (path or id), or None.
        checkpoint_sha256: `data.embed.weights_hash` of the encoder as loaded.
        profile: The model's own profile.
        settings: The sliding windows.
        task: `{"id", "split"}` when the scans are a task's, else None.
        probe: `probe_change`'s result for a scan-labelled task; None: cosines only.
        date: The day of the measurement (today by default).
    """
    perturbations = [
        {**item, "probe": probe.per_perturbation[item["name"]]}
        if probe is not None and item["name"] in probe.per_perturbation
        else item
        for item in measured.perturbations
    ]
    record = {
        "record_type": RECORD_TYPE,
        "schema_version": SCHEMA_VERSION,
        "date": (date or datetime.date.today()).isoformat(),
        "model": model,
        "checkpoint": checkpoint,
        "checkpoint_sha256": checkpoint_sha256,
        "profile": profile.to_dict(),
        "embedding": {
            "dim": measured.embedding_dim,
            "roi_size": [int(size) for size in settings.roi_size],
            "overlap": float(settings.overlap),
            "precision": settings.precision,
        },
        "task": dict(task) if task is not None else None,
        "versions": versions(),
        "scans": measured.scans,
        "perturbations": perturbations,
        "orientation_identical": measured.orientation_identical,
    }
    if probe is not None:
        record["probe"] = probe.summary
    return record


def versions() -> dict[str, str | None]:
    """The installed versions of the packages a robustness number depends on."""
    found: dict[str, str | None] = {}
    for package in ("eva-coralbay", "kaiko-eva", "torch", "monai"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def task_scans(task_id: str, data_root: str | os.PathLike[str], split: str = "val") -> list[str]:
    """The scans of a segmentation task's split, as its adapter finds them under `data_root`.

    Raises:
        ValueError: For a task without whole scans (a probe on patches or MedMNIST volumes) or
            an unknown task id.
    """
    from eva_coralbay import tasks
    from eva_coralbay.data import adapters

    benchmark = tasks.CATALOGUE.get(task_id)
    if benchmark is not None:
        adapter = None
        if benchmark.type == "segmentation" and benchmark.adapter is not None:
            adapter = adapters.adapter_by_name(benchmark.adapter)
    elif task_id == adapters.DecathlonFormat.task_id:  # any dataset in the Decathlon layout
        adapter = adapters.DecathlonFormat
    else:
        known = ", ".join(
            [*tasks.CATALOGUE, adapters.DecathlonFormat.task_id, adapters.ScanTable.task_id]
        )
        raise ValueError(f"unknown task {task_id!r}; known: {known}")
    if adapter is None or not issubclass(adapter, adapters.SegmentationAdapter):
        raise ValueError(
            f"task {task_id!r} has no whole CT scans to perturb (its samples are patches or "
            "pre-cropped volumes); give the scans with --data instead"
        )
    dataset = adapter(root=str(data_root), split=split, profile=None, allow_incomplete=True)
    dataset.configure()
    scans = [str(case.image) for case in dataset.cases]
    if not scans:
        raise ValueError(f"task {task_id!r}: no {split} scans found under {data_root}")
    return scans


def labelled_task_scans(
    task_id: str, data_root: str | os.PathLike[str], profile: PreprocessingProfile
) -> LabelledScans | None:
    """A scan-labelled task's scans and classes (CC-CCII, or `scan_table` for any table).

    The dataset is validated first: every problem of its table or release is raised at once.

    Args:
        task_id: The task id; `scan_table` reads `data_root` as a scan table (`ScanTable`).
        data_root: The task's data in its native layout (for `scan_table`: the table or its
            folder).
        profile: The model's profile (a layout without HU, CC-CCII's, is read onto its window).

    Returns:
        The training and validation scans with their targets; None for a task without scan
        labels (segmentation, patches).

    Raises:
        DatasetValidationError: Listing every problem of the data.
    """
    import functools

    from eva_coralbay.data import adapters

    scan_level: dict[str, type[adapters.ScanClassificationAdapter[Any]]] = {
        adapter.task_id: adapter for adapter in (*adapters.SCAN_ADAPTERS, adapters.ScanTable)
    }
    adapter = scan_level.get(task_id)
    if adapter is None:
        return None
    dataset = adapter(root=str(data_root), profile=profile, use_cache=False)
    dataset.configure()
    dataset.validate()
    split = {"train": ([], []), "val": ([], [])}
    for case in dataset.cases:
        sources, targets = split[case.split]
        read = functools.partial(dataset.read_scan, case)
        sources.append(ScanSource(str(case.image), case.image, read))
        targets.append(int(case.target))
    return LabelledScans(
        classes=list(dataset.classes or []),
        train=split["train"][0],
        train_targets=split["train"][1],
        val=split["val"][0],
        val_targets=split["val"][1],
    )
