"""Writers of each benchmark's exact native layout, filled with synthetic phantoms.

Tests and the demo use them to get a dataset every adapter reads exactly as it reads the real
release: the same folder structure, file names, per-class mask files and metadata files
(dataset.json, meta.csv). The scans are `phantoms` torsos (beside this module), so everything is
deterministic; their labels are mapped onto each benchmark's own label ids (see `label_plan`).
Axis orientations differ between benchmarks on purpose, to exercise the standardisation.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
from nibabel import orientations

from eva_coralbay.data.adapters import (
    amos22,
    base,
    btcv,
    chaos,
    flare22,
    kits23,
    lits17,
    msd,
    totalsegmentator_v2,
    word,
)
from eva_coralbay.data.synthetic import dicom, metaimage, phantoms

DEFAULT_SHAPE = (40, 32, 28)
DEFAULT_SPACING = 5.0
"""A phantom this size shows all six organs in a few tens of kB (see `phantoms.make_phantom`)."""


@dataclasses.dataclass(frozen=True)
class CaseFiles:
    """Where one case's files go and how its arrays are oriented."""

    image: Path
    label: Path | None
    seed: int
    orientation: str = "RAS"


def label_plan(canonical_classes: Sequence[str]) -> dict[int, int]:
    """Maps phantom organ ids onto a benchmark's label ids.

    An organ goes to the class of the same canonical name; "kidney" takes both kidneys; the
    benchmark's remaining classes (tumours, vessels, organs the phantom lacks) take the phantom's
    unused organs in order, as synthetic stand-ins.

    Args:
        canonical_classes: The benchmark's canonical class names, background first.

    Returns:
        Phantom organ id -> benchmark label id (organs left out become background).
    """
    by_name = {name: organ_id for organ_id, name in phantoms.ORGANS.items()}
    plan: dict[int, int] = {}
    unmatched = []
    for label_id, name in enumerate(canonical_classes):
        if label_id == 0:
            continue
        if name in by_name:
            plan[by_name[name]] = label_id
        elif name == "kidney":
            plan[by_name["kidney_right"]] = plan[by_name["kidney_left"]] = label_id
        else:
            unmatched.append(label_id)
    spare = [organ_id for organ_id in phantoms.ORGANS if organ_id not in plan]
    for organ_id, label_id in zip(spare, unmatched, strict=False):
        plan[organ_id] = label_id
    return plan


def phantom_arrays(
    seed: int,
    canonical_classes: Sequence[str],
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: float = DEFAULT_SPACING,
    orientation: str = "RAS",
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
    """A phantom with the benchmark's label ids, its arrays laid out along `orientation`.

    Returns:
        HU image (int16), label map (uint8) and the 4x4 voxel-to-RAS affine.
    """
    phantom = phantoms.make_phantom(seed, shape=shape, spacing=spacing)
    label = np.zeros_like(phantom.label)
    for organ_id, label_id in label_plan(canonical_classes).items():
        label[phantom.label == organ_id] = label_id
    image, label, affine = phantom.image, label, phantom.affine
    if orientation != "RAS":
        transform = orientations.ornt_transform(
            orientations.io_orientation(affine), orientations.axcodes2ornt(tuple(orientation))
        )
        affine = affine @ orientations.inv_ornt_aff(transform, image.shape)
        image = orientations.apply_orientation(image, transform)
        label = orientations.apply_orientation(label, transform)
    return (
        np.ascontiguousarray(image),
        np.ascontiguousarray(label),
        np.asarray(affine, dtype=np.float64),
    )


def save_nifti(
    path: Path, array: npt.NDArray[np.generic], affine: npt.NDArray[np.floating] | None
) -> None:
    """Writes a NIfTI file (compressed when the name ends in .gz), creating its folder.

    Raises:
        ValueError: Without an affine (nibabel would silently write an identity one).
    """
    if affine is None:
        raise ValueError(f"{path}: a NIfTI file needs its voxel-to-world affine")
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)


def write_cases(
    files: Sequence[CaseFiles],
    canonical_classes: Sequence[str],
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: float = DEFAULT_SPACING,
) -> None:
    """Writes each case's image and (when it has one) label map."""
    for case in files:
        image, label, affine = phantom_arrays(
            case.seed, canonical_classes, shape, spacing, case.orientation
        )
        save_nifti(case.image, image, affine)
        if case.label is not None:
            save_nifti(case.label, label, affine)


# ---------------------------------------------------------------------------------------------
# One writer per benchmark: (root, shape, spacing) -> the root to give the adapter.


def write_btcv(
    root: Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, spacing: float = DEFAULT_SPACING
) -> Path:
    """Synapse layout: RawData/Training/{img,label}/ with cases 1, 2 (train) and 35 (val)."""
    training = root / "RawData" / "Training"
    files = [
        CaseFiles(
            training / "img" / f"img{n:04d}.nii.gz",
            training / "label" / f"label{n:04d}.nii.gz",
            n,
            "LPS",
        )
        for n in (1, 2, 35)
    ]
    files.append(
        CaseFiles(root / "RawData" / "Testing" / "img" / "img0061.nii.gz", None, 61, "LPS")
    )
    write_cases(files, btcv.BTCV.canonical_classes, shape, spacing)
    return root


def write_lits17(
    root: Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, spacing: float = DEFAULT_SPACING
) -> Path:
    """Challenge layout: uncompressed volume-N.nii / segmentation-N.nii in the two batches."""
    files = []
    for number in (0, 1, 2, 28):
        batch = root / ("Training Batch 1" if number <= 27 else "Training Batch 2")
        files.append(
            CaseFiles(
                batch / f"volume-{number}.nii", batch / f"segmentation-{number}.nii", number, "LAS"
            )
        )
    write_cases(files, lits17.LiTS17.canonical_classes, shape, spacing)
    return root


MSD_EXAMPLE_CASES = {
    "Task03_Liver": ((0, 1), 2),
    "Task06_Lung": ((1, 3), 6),
    "Task07_Pancreas": ((1, 4), 12),
    "Task08_HepaticVessel": ((1, 2), 18),
    "Task09_Spleen": ((2, 3), 10),
    "Task10_Colon": ((1, 5), 8),
}
"""Per task: two training case numbers and one validation case number that exist in the release."""


def write_msd(
    adapter: type[msd.MSDAdapter],
    root: Path,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: float = DEFAULT_SPACING,
) -> Path:
    """Decathlon layout: TaskNN_Name/{dataset.json, imagesTr, labelsTr, imagesTs} + "._" files."""
    task_dir = root / adapter.msd_task
    train_numbers, val_number = MSD_EXAMPLE_CASES[adapter.msd_task]
    numbers = [*train_numbers, val_number]
    names = [adapter.case_format.format(number) for number in numbers]
    files = [
        CaseFiles(
            task_dir / "imagesTr" / f"{name}.nii.gz",
            task_dir / "labelsTr" / f"{name}.nii.gz",
            number,
            "LPS",
        )
        for name, number in zip(names, numbers, strict=True)
    ]
    test_name = adapter.case_format.format(max(numbers) + 100)
    files.append(CaseFiles(task_dir / "imagesTs" / f"{test_name}.nii.gz", None, 999, "LPS"))
    write_cases(files, adapter.canonical_classes, shape, spacing)
    # The archives carry an AppleDouble "._" twin of every file: not NIfTI, to be ignored.
    for folder in ("imagesTr", "labelsTr"):
        for name in names:
            (task_dir / folder / f"._{name}.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    dataset_json = {
        "name": adapter.msd_task.split("_", 1)[1],
        "description": "synthetic phantoms in the Decathlon layout",
        "reference": "eva-coralbay layouts.py",
        "licence": "CC-BY-SA 4.0",
        "release": "1.0 04/05/2018",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {str(i): name for i, name in enumerate(adapter.native_classes)},
        "numTraining": len(names),
        "numTest": 1,
        "training": [
            {"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz"}
            for name in names
        ],
        "test": [f"./imagesTs/{test_name}.nii.gz"],
    }
    (task_dir / "dataset.json").write_text(json.dumps(dataset_json, indent=4))
    return root


def write_kits23(
    root: Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, spacing: float = DEFAULT_SPACING
) -> Path:
    """kits23 repository layout: dataset/case_XXXXX/{imaging,segmentation}.nii.gz."""
    files = [
        CaseFiles(
            root / "dataset" / f"case_{n:05d}" / "imaging.nii.gz",
            root / "dataset" / f"case_{n:05d}" / "segmentation.nii.gz",
            n,
            "SPL",
        )
        for n in (0, 1, 5)
    ]
    write_cases(files, kits23.KiTS23.canonical_classes, shape, spacing)
    return root / "dataset"


def write_word(
    root: Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, spacing: float = DEFAULT_SPACING
) -> Path:
    """WORD-V0.1.0/{images,labels}{Tr,Val,Ts}/word_NNNN.nii.gz."""
    top = root / "WORD-V0.1.0"
    placement = [("Tr", 2), ("Tr", 3), ("Val", 1), ("Ts", 7)]
    files = [
        CaseFiles(
            top / f"images{folder}" / f"word_{n:04d}.nii.gz",
            top / f"labels{folder}" / f"word_{n:04d}.nii.gz",
            n,
            "RAS",
        )
        for folder, n in placement
    ]
    write_cases(files, word.WORD.canonical_classes, shape, spacing)
    return root


def write_flare22(
    root: Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, spacing: float = DEFAULT_SPACING
) -> Path:
    """FLARE22Train/{images/FLARE22_Tr_NNNN_0000.nii.gz, labels/FLARE22_Tr_NNNN.nii.gz}."""
    top = root / "FLARE22Train"
    files = [
        CaseFiles(
            top / "images" / f"FLARE22_Tr_{n:04d}_0000.nii.gz",
            top / "labels" / f"FLARE22_Tr_{n:04d}.nii.gz",
            n,
            "LPS",
        )
        for n in (11, 12, 1)
    ]
    write_cases(files, flare22.FLARE22.canonical_classes, shape, spacing)
    return root


def write_amos22(
    root: Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, spacing: float = DEFAULT_SPACING
) -> Path:
    """amos22/{imagesTr,labelsTr,imagesVa,labelsVa}/amos_NNNN.nii.gz; 540 is an MRI id (skipped)."""
    top = root / "amos22"
    placement = [("Tr", 1), ("Tr", 5), ("Va", 8), ("Tr", 540)]
    files = [
        CaseFiles(
            top / f"images{folder}" / f"amos_{n:04d}.nii.gz",
            top / f"labels{folder}" / f"amos_{n:04d}.nii.gz",
            n,
            "RAS",
        )
        for folder, n in placement
    ]
    write_cases(files, amos22.AMOS22CT.canonical_classes, shape, spacing)
    names = amos22.AMOS22CT.native_classes
    (top / "dataset.json").write_text(
        json.dumps(
            {"name": "AMOS", "labels": {str(i): name for i, name in enumerate(names)}}, indent=4
        )
    )
    return root


META_COLUMNS = (
    "image_id",
    "age",
    "gender",
    "institute",
    "study_type",
    "split",
    "manufacturer",
    "scanner_model",
    "kvp",
    "pathology",
    "pathology_location",
)
"""The columns of TotalSegmentator v2's meta.csv (the adapter reads `image_id` and `split`)."""


def write_totalsegmentator_v2(
    root: Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, spacing: float = DEFAULT_SPACING
) -> Path:
    """sNNNN/{ct.nii.gz, segmentations/<117 names>.nii.gz} and a ';'-separated meta.csv."""
    subjects = [
        ("s0000", "train", 0),
        ("s0001", "train", 1),
        ("s0002", "val", 2),
        ("s0003", "test", 3),
    ]
    classes = totalsegmentator_v2.TotalSegmentatorV2.native_classes
    for subject, _, seed in subjects:
        image, label, affine = phantom_arrays(seed, classes, shape, spacing, "RAS")
        save_nifti(root / subject / "ct.nii.gz", image, affine)
        for class_id, name in enumerate(classes[1:], start=1):
            mask = (label == class_id).astype(np.uint8)
            save_nifti(root / subject / "segmentations" / f"{name}.nii.gz", mask, affine)
    write_meta_csv(root, [(subject, split) for subject, split, _ in subjects])
    return root


def write_chaos(
    root: Path,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: float = DEFAULT_SPACING,
    *,
    top_down: Sequence[int] = (2,),
    mirrored: Sequence[int] = (8,),
) -> Path:
    """CHAOS layout: CHAOS_Train_Sets/Train_Sets/CT/<id>/{DICOM_anon, Ground}, cases 1, 2, 8.

    One DICOM file and one PNG liver mask (0 / 255) per axial slice, named in the same order,
    as the release ships them. Case 2's files run from the top slice down and case 8 stores
    its columns mirrored: an adapter that assumed the usual layout would misplace their masks.
    """
    from PIL import Image

    ct_dir = root / "CHAOS_Train_Sets" / "Train_Sets" / "CT"
    for number in (1, 2, 8):
        image, label, affine = phantom_arrays(
            number, chaos.CHAOS.canonical_classes, shape, spacing, "RAS"
        )
        is_mirrored = number in mirrored
        slices = dicom.axial_slices(image, affine, mirrored=is_mirrored)
        masks = dicom.axial_slices(label, affine, mirrored=is_mirrored)
        order = list(range(len(slices)))[:: -1 if number in top_down else 1]
        case_dir = ct_dir / str(number)
        dicom.write_series(
            case_dir / "DICOM_anon",
            [slices[index] for index in order],
            [f"i{position:04d},0000b.dcm" for position in range(len(order))],
            slice_thickness=spacing,
        )
        ground = case_dir / "Ground"
        ground.mkdir(parents=True, exist_ok=True)
        for position, index in enumerate(order):
            pixels = np.asarray(masks[index].pixels, dtype=np.uint8)
            pixels = np.where(pixels > 0, 255, 0).astype(np.uint8)
            Image.fromarray(pixels).save(ground / f"liver_GT_{position:03d}.png")
    return root


LUNA25_SCANS: tuple[tuple[str, str, bool, tuple[tuple[int, int, int], ...]], ...] = (
    # (patient, series, stored right-to-left, nodule voxels on the phantom's RAS grid)
    ("LUNA25-0001", "1.2.826.0.1.1001", False, ((12, 14, 18), (28, 16, 10))),
    ("LUNA25-0001", "1.2.826.0.1.1002", True, ((27, 15, 17),)),
    ("LUNA25-0002", "1.2.826.0.1.2001", True, ((11, 17, 12),)),
    ("LUNA25-0008", "1.2.826.0.1.8001", False, ((13, 15, 16), (26, 14, 20))),
)
"""The synthetic LUNA25 release: patients 0001 and 0002 fall in the train split, 0008 in val."""

NODULE_HU = 400
"""A solid nodule brighter than any phantom organ, so a patch centre shows whether it hit it."""


def write_luna25(
    root: Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, spacing: float = DEFAULT_SPACING
) -> Path:
    """LUNA25 layout: luna25_images/<SeriesInstanceUID>.mha + the annotation table.

    Scans are stored as ITK writes them (LPS world), half with the usual left-ward first axis
    and half right-to-left, each with small bright nodules whose world (LPS) centres the table
    lists, alternately benign (0) and malignant (1).
    """
    rows = []
    for scan_index, (patient, series, right_to_left, nodules) in enumerate(LUNA25_SCANS):
        image, _, affine = phantom_arrays(scan_index + 40, ("background",), shape, spacing)
        grid = np.indices(shape).transpose(1, 2, 3, 0)
        for centre in nodules:
            image[np.linalg.norm(grid - np.asarray(centre), axis=-1) <= 1.5] = NODULE_HU
        if right_to_left:
            # Stored RAS-indexed: the first axis runs toward the patient's right (-x in LPS).
            stored, first_voxel, direction = image, (0, 0, 0), np.diag([-1.0, -1.0, 1.0])
        else:
            stored = image[::-1, ::-1, :]
            first_voxel, direction = (shape[0] - 1, shape[1] - 1, 0), np.eye(3)
        origin_ras = affine @ np.array([*first_voxel, 1.0])
        metaimage.write_mha(
            root / "luna25_images" / f"{series}.mha",
            stored,
            spacing=(spacing, spacing, spacing),
            origin_lps=(-origin_ras[0], -origin_ras[1], origin_ras[2]),
            direction_lps=direction,
        )
        for number, centre in enumerate(nodules):
            world_ras = affine @ np.array([*centre, 1.0])
            rows.append(
                {
                    "PatientID": patient,
                    "SeriesInstanceUID": series,
                    "AnnotationID": f"{series}_{number}",
                    "CoordX": f"{-world_ras[0]:.3f}",
                    "CoordY": f"{-world_ras[1]:.3f}",
                    "CoordZ": f"{world_ras[2]:.3f}",
                    "label": str((scan_index + number) % 2),
                }
            )
    with (root / "LUNA25_Public_Training_Development_Data.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def write_meta_csv(root: Path, subjects: Sequence[tuple[str, str]]) -> None:
    """Writes a TotalSegmentator meta.csv listing (subject, split) pairs."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "meta.csv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(META_COLUMNS)
        for subject, split in subjects:
            row = {column: "" for column in META_COLUMNS}
            row["image_id"], row["split"], row["study_type"] = subject, split, "ct abdomen-pelvis"
            writer.writerow([row[column] for column in META_COLUMNS])


PHANTOM_CLASSES: tuple[str, ...] = ("background", *phantoms.ORGANS.values())
"""The phantom's own label ids and names, as a user dataset of phantoms declares them."""


def write_decathlon_format(
    root: Path,
    train: Sequence[int] = (1, 2),
    val: Sequence[int] = (3,),
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: float = DEFAULT_SPACING,
    name: str = "Phantoms",
) -> Path:
    """A user dataset of phantoms in the Decathlon layout, with the `validation` list extension.

    `root/{dataset.json, imagesTr/phantom_NNN.nii.gz, labelsTr/phantom_NNN.nii.gz}`: one case
    per seed in `train` and `val`, labels with the phantom's ids (`PHANTOM_CLASSES`), and
    dataset.json listing every case under `training` and the `val` ones under `validation`.
    """
    names = {seed: f"phantom_{seed:03d}" for seed in (*train, *val)}
    files = [
        CaseFiles(
            root / "imagesTr" / f"{case}.nii.gz", root / "labelsTr" / f"{case}.nii.gz", seed, "LPS"
        )
        for seed, case in names.items()
    ]
    write_cases(files, PHANTOM_CLASSES, shape, spacing)
    dataset_json = {
        "name": name,
        "description": "synthetic torso phantoms (eva_coralbay.data.synthetic.phantoms)",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {str(i): label for i, label in enumerate(PHANTOM_CLASSES)},
        "numTraining": len(names),
        "training": [
            {"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"}
            for case in names.values()
        ],
        "validation": [names[seed] for seed in val],
    }
    (root / "dataset.json").write_text(json.dumps(dataset_json, indent=4))
    return root


def writer_for(adapter: type[base.SegmentationAdapter]) -> Callable[..., Path]:
    """The layout writer of an adapter class: `writer(root, shape=..., spacing=...) -> root`."""
    if issubclass(adapter, msd.MSDAdapter):
        return lambda root, **kwargs: write_msd(adapter, root, **kwargs)
    writers: dict[type[base.SegmentationAdapter], Callable[..., Path]] = {
        btcv.BTCV: write_btcv,
        lits17.LiTS17: write_lits17,
        kits23.KiTS23: write_kits23,
        word.WORD: write_word,
        flare22.FLARE22: write_flare22,
        amos22.AMOS22CT: write_amos22,
        chaos.CHAOS: write_chaos,
        totalsegmentator_v2.TotalSegmentatorV2: write_totalsegmentator_v2,
    }
    return writers[adapter]
