import gzip
import json
import pathlib
import shutil
from typing import cast

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data.meta_tensor import MetaTensor

from eva_coralbay.data.profile import CORALBAY_PROFILE
from eva_coralbay.data.readers import (
    ScanNotFoundError,
    ScanReadError,
    read_label,
    read_scan,
    scan_format,
)

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def dicom_scan(totalsegmentator_dir: pathlib.Path) -> MetaTensor:
    """Scan B, read once per module (decoding 20 JPEG-2000 slices takes seconds)."""
    return read_scan(totalsegmentator_dir / "example_ct_dicom")


def _load(path: pathlib.Path) -> nib.Nifti1Image:
    return cast(nib.Nifti1Image, nib.load(path))


def _affine(image: nib.Nifti1Image) -> np.ndarray:
    assert image.affine is not None
    return image.affine


def _label_id(totalsegmentator_dir: pathlib.Path, name: str) -> int:
    names = json.loads((totalsegmentator_dir / "labels_total_v2.json").read_text())
    return next(int(key) for key, value in names.items() if value == name)


def _axcodes(affine: torch.Tensor) -> str:
    return "".join(nib.orientations.aff2axcodes(affine.numpy()))


@pytest.mark.parametrize(
    ("relative_path", "shape", "spacing", "axcodes"),
    [
        ("example_ct_sm.nii.gz", (122, 101, 30), (3.0, 3.0, 3.0), "RAS"),
        ("aorta_report/ct_cropped.nii.gz", (120, 126, 164), (1.5, 1.5, 1.5), "LPS"),
        ("example_ct_dicom", (512, 512, 20), (0.9765625, 0.9765625, 2.0), "LPS"),
    ],
)
def test_reads_real_scans_in_their_orientation(
    totalsegmentator_dir: pathlib.Path,
    relative_path: str,
    shape: tuple[int, ...],
    spacing: tuple[float, ...],
    axcodes: str,
) -> None:
    path = totalsegmentator_dir / relative_path
    scan = read_scan(path)
    assert scan.shape == (1, *shape)
    assert scan.dtype == torch.float32
    assert scan.meta["filename_or_obj"] == str(path)
    np.testing.assert_allclose(scan.meta["spacing"], spacing, rtol=1e-6)
    assert _axcodes(scan.affine) == axcodes
    # Hounsfield units: air around the body, soft tissue inside, bone below 4000.
    assert -1250 <= float(scan.min()) <= -900
    assert 1000 <= float(scan.max()) <= 4000
    assert float(((scan > -100) & (scan < 100)).float().mean()) > 0.05


def test_nifti_matches_nibabel(totalsegmentator_dir: pathlib.Path) -> None:
    path = totalsegmentator_dir / "aorta_report" / "ct_cropped.nii.gz"
    reference = _load(path)
    scan = read_scan(path)
    np.testing.assert_array_equal(scan[0].numpy(), reference.get_fdata(dtype=np.float32))
    np.testing.assert_allclose(scan.affine.numpy(), _affine(reference))


def test_dicom_series_matches_itk(
    dicom_scan: MetaTensor, totalsegmentator_dir: pathlib.Path
) -> None:
    """ITK's GDCM series reader (sorting by position itself) is the oracle for pydicom's path."""
    from monai.data.image_reader import ITKReader

    folder = totalsegmentator_dir / "example_ct_dicom"
    scan = dicom_scan
    reader = ITKReader()
    itk_array, itk_meta = reader.get_data(reader.read(str(folder)))
    np.testing.assert_array_equal(scan[0].numpy(), itk_array.astype(np.float32))
    np.testing.assert_allclose(scan.affine.numpy(), itk_meta["affine"], atol=1e-4)
    assert scan.meta["format"] == "dicom" and scan.meta["modality"] == "CT"


def _assert_liver_aligned(scan: torch.Tensor, labels: torch.Tensor, liver: int) -> None:
    liver_hu = scan[labels == liver]
    assert liver_hu.numel() > 1000
    assert 30 <= float(liver_hu.median()) <= 200  # liver parenchyma
    assert float(((liver_hu > 0) & (liver_hu < 250)).float().mean()) > 0.8


def test_dicom_labels_line_up_voxel_for_voxel(
    dicom_scan: MetaTensor, totalsegmentator_dir: pathlib.Path
) -> None:
    """The LAS label map and the LPS-read DICOM meet on one grid, raw and standardised apart."""
    liver = _label_id(totalsegmentator_dir, "liver")
    scan = dicom_scan
    label_path = totalsegmentator_dir / "example_seg_dicom.nii.gz"
    assert _axcodes(torch.as_tensor(_load(label_path).affine)) == "LAS"

    aligned = read_label(label_path, reference=scan)
    assert aligned.shape == scan.shape
    torch.testing.assert_close(aligned.affine, scan.affine)
    _assert_liver_aligned(scan[0], aligned[0], liver)

    # Standardised independently (no reference), the two still coincide voxel for voxel.
    own_grid = read_label(label_path)
    image, _ = CORALBAY_PROFILE.apply(scan)
    _, labels = CORALBAY_PROFILE.apply(own_grid, own_grid)
    assert labels is not None and labels.shape == image.shape
    torch.testing.assert_close(labels.affine, image.affine)
    hounsfield = image[0] * 2000.0 - 1000.0
    _assert_liver_aligned(hounsfield, labels[0], liver)
    # A label map flipped by one voxel would put many liver voxels on other tissue.
    shifted = torch.roll(labels[0], shifts=8, dims=1)
    assert float(hounsfield[shifted == liver].median()) < float(
        hounsfield[labels[0] == liver].median()
    )


def test_ras_scan_labels_line_up(totalsegmentator_dir: pathlib.Path) -> None:
    scan = read_scan(totalsegmentator_dir / "example_ct_sm.nii.gz")
    labels = read_label(totalsegmentator_dir / "example_seg.nii.gz", reference=scan)
    assert labels.dtype == torch.int64
    _assert_liver_aligned(scan[0], labels[0], _label_id(totalsegmentator_dir, "liver"))


def _reoriented_copy(source: pathlib.Path, target: pathlib.Path, axcodes: str) -> None:
    image = _load(source)
    transform = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(_affine(image)), nib.orientations.axcodes2ornt(axcodes)
    )
    nib.save(image.as_reoriented(transform.tolist()), target)


@pytest.mark.parametrize("axcodes", ["SPL", "ILA"])
def test_another_orientation_on_disk_gives_the_same_standardised_array(
    totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path, axcodes: str
) -> None:
    """Permuting and flipping voxels (affine changed to match) leaves the standardised scan alone.

    Orientation to RAS undoes the permutation exactly, so both resamplings see the same
    array on the same grid: equal up to float rounding of the affine.
    """
    source = totalsegmentator_dir / "example_ct_sm.nii.gz"
    moved = tmp_path / "moved.nii.gz"
    _reoriented_copy(source, moved, axcodes)
    moved_scan = read_scan(moved)
    assert _axcodes(moved_scan.affine) == axcodes
    assert not torch.equal(moved_scan, read_scan(source))
    original, _ = CORALBAY_PROFILE.apply(read_scan(source))
    standardised, _ = CORALBAY_PROFILE.apply(moved_scan)
    assert standardised.shape == original.shape
    torch.testing.assert_close(standardised.as_tensor(), original.as_tensor(), atol=1e-5, rtol=0)
    torch.testing.assert_close(standardised.affine, original.affine, atol=1e-4, rtol=0)


def test_label_in_another_orientation_is_brought_onto_the_scan_grid(
    totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    scan = read_scan(totalsegmentator_dir / "example_ct_sm.nii.gz")
    expected = read_label(totalsegmentator_dir / "example_seg.nii.gz", reference=scan)
    moved = tmp_path / "labels_pil.nii.gz"
    _reoriented_copy(totalsegmentator_dir / "example_seg.nii.gz", moved, "PIL")
    assert torch.equal(read_label(moved, reference=scan), expected)


def test_label_on_another_grid_is_rejected(
    totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    scan = read_scan(totalsegmentator_dir / "example_ct_sm.nii.gz")
    labels = _load(totalsegmentator_dir / "example_seg.nii.gz")
    shifted_affine = _affine(labels).copy()
    shifted_affine[:3, 3] += [1.5, 0.0, 0.0]  # half a voxel
    path = tmp_path / "shifted.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(labels.dataobj), shifted_affine), path)
    with pytest.raises(ScanReadError, match=r"shifted\.nii\.gz.*example_ct_sm\.nii\.gz"):
        read_label(path, reference=scan)
    cropped = tmp_path / "cropped.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(labels.dataobj)[:-1], _affine(labels)), cropped)
    with pytest.raises(ScanReadError, match="does not lie on the voxel grid"):
        read_label(cropped, reference=scan)


def test_non_integer_label_is_rejected(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "soft.nii.gz"
    values = np.zeros((4, 4, 4), dtype=np.float32)
    values[1, 1, 1] = 0.5
    nib.save(nib.Nifti1Image(values, np.eye(4)), path)
    with pytest.raises(ScanReadError, match=r"soft\.nii\.gz: label map holds non-integer values"):
        read_label(path)


def _oblique_affine() -> np.ndarray:
    """A RAS affine with permuted, flipped and slightly rotated axes and anisotropic spacing."""
    angle = np.deg2rad(10.0)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0, 0, 1]]
    )
    axes = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ axes @ np.diag([0.8, 1.25, 2.5])
    affine[:3, 3] = [-12.5, 30.0, -101.0]
    return affine


def _write_metaimage(path: pathlib.Path, array: np.ndarray, ras_affine: np.ndarray) -> None:
    """Writes a MetaImage by hand (not with ITK), from the format's documented keys."""
    lps = LPS_FROM_RAS @ ras_affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    directions = lps[:3, :3] / spacing
    header = "\n".join(
        [
            "ObjectType = Image",
            "NDims = 3",
            "BinaryData = True",
            "BinaryDataByteOrderMSB = False",
            "CompressedData = False",
            # One direction cosine triplet per voxel axis.
            "TransformMatrix = " + " ".join(f"{value:.10g}" for value in directions.T.ravel()),
            "Offset = " + " ".join(f"{value:.10g}" for value in lps[:3, 3]),
            "ElementSpacing = " + " ".join(f"{value:.10g}" for value in spacing),
            "DimSize = " + " ".join(str(size) for size in array.shape),
            "ElementType = MET_SHORT",
            "ElementDataFile = LOCAL",
        ]
    )
    path.write_bytes(header.encode() + b"\n" + array.astype("<i2").tobytes(order="F"))


def _write_nrrd(path: pathlib.Path, array: np.ndarray, ras_affine: np.ndarray) -> None:
    """Writes an NRRD by hand (not with ITK), from the format's documented fields."""
    lps = LPS_FROM_RAS @ ras_affine

    def vector(values: np.ndarray) -> str:
        return "(" + ",".join(f"{value:.10g}" for value in values) + ")"

    header = "\n".join(
        [
            "NRRD0004",
            "type: short",
            "dimension: 3",
            "space: left-posterior-superior",
            "sizes: " + " ".join(str(size) for size in array.shape),
            "space directions: " + " ".join(vector(lps[:3, axis]) for axis in range(3)),
            "kinds: domain domain domain",
            "endian: little",
            "encoding: raw",
            "space origin: " + vector(lps[:3, 3]),
        ]
    )
    path.write_bytes(header.encode() + b"\n\n" + array.astype("<i2").tobytes(order="F"))


@pytest.mark.parametrize(("suffix", "writer"), [(".mha", _write_metaimage), (".nrrd", _write_nrrd)])
def test_metaimage_and_nrrd_match_nifti(
    totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path, suffix: str, writer: object
) -> None:
    """The same voxels and world geometry written as NIfTI (nibabel) and MHA / NRRD read alike."""
    source = np.asarray(_load(totalsegmentator_dir / "example_ct_sm.nii.gz").dataobj)
    array = np.ascontiguousarray(source[:40, :30, :20]).astype(np.int16)
    affine = _oblique_affine()
    nifti_path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(array, affine), nifti_path)
    other_path = tmp_path / f"scan{suffix}"
    writer(other_path, array, affine)  # type: ignore[operator]

    expected = read_scan(nifti_path)
    scan = read_scan(other_path)
    assert scan.meta["format"] == scan_format(other_path) != "nifti"
    np.testing.assert_array_equal(scan.numpy(), expected.numpy())
    np.testing.assert_allclose(scan.affine.numpy(), affine, atol=1e-4)
    np.testing.assert_allclose(scan.meta["spacing"], [0.8, 1.25, 2.5], rtol=1e-6)


FIRST_COPIED_SLICE = 5


def _copy_series(totalsegmentator_dir: pathlib.Path, target: pathlib.Path) -> list[pathlib.Path]:
    """Copies 6 neighbouring slices of scan B (a valid, smaller series), inferior first."""
    import pydicom

    source = totalsegmentator_dir / "example_ct_dicom"
    by_position = sorted(
        source.iterdir(),
        key=lambda path: float(
            pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2]
        ),
    )
    target.mkdir()
    chosen = by_position[FIRST_COPIED_SLICE : FIRST_COPIED_SLICE + 6]
    return [pathlib.Path(shutil.copy(path, target / path.name)) for path in chosen]


def test_dicom_slice_order_follows_position_not_instance_number(
    dicom_scan: MetaTensor, totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    import pydicom

    files = _copy_series(totalsegmentator_dir, tmp_path / "series")
    numbers = [3, 6, 1, 5, 2, 4]
    for path, number in zip(files, numbers, strict=True):
        dataset = pydicom.dcmread(path)
        dataset.InstanceNumber = number
        dataset.save_as(path)
    scan = read_scan(tmp_path / "series")
    end = FIRST_COPIED_SLICE + len(files)
    assert torch.equal(scan.as_tensor(), dicom_scan.as_tensor()[..., FIRST_COPIED_SLICE:end])
    expected_affine = dicom_scan.affine.clone()
    expected_affine[:3, 3] += FIRST_COPIED_SLICE * dicom_scan.affine[:3, 2]
    torch.testing.assert_close(scan.affine, expected_affine)


def test_dicom_series_with_a_missing_slice_is_rejected(
    totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    files = _copy_series(totalsegmentator_dir, tmp_path / "series")
    files[3].unlink()
    with pytest.raises(ScanReadError, match=r"series: slice steps are uneven.*missing slices"):
        read_scan(tmp_path / "series")


def test_dicom_series_mixing_two_series_is_rejected(
    totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    import pydicom

    files = _copy_series(totalsegmentator_dir, tmp_path / "series")
    dataset = pydicom.dcmread(files[0])
    dataset.SeriesInstanceUID = "1.2.3.4"
    dataset.save_as(files[0])
    with pytest.raises(ScanReadError, match="mixes 2 DICOM series"):
        read_scan(tmp_path / "series")


def _nifti(path: pathlib.Path, array: np.ndarray) -> pathlib.Path:
    nib.save(nib.Nifti1Image(array, np.diag([1.5, 1.5, 3.0, 1.0])), path)
    return path


def test_bad_inputs_give_clear_errors(
    totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    cases: list[tuple[pathlib.Path, str]] = [
        (_nifti(tmp_path / "slice.nii.gz", np.zeros((8, 8), np.int16)), "is a 2D slice"),
        (_nifti(tmp_path / "flat.nii.gz", np.zeros((8, 8, 1), np.int16)), "is a 2D slice"),
        (_nifti(tmp_path / "series.nii.gz", np.zeros((8, 8, 8, 2), np.int16)), "is 4D"),
    ]
    nan_volume = np.zeros((8, 8, 8), np.float32)
    nan_volume[2, 3, 4] = np.nan
    cases.append((_nifti(tmp_path / "nan.nii.gz", nan_volume), "1 of 512 voxels are NaN"))
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes((totalsegmentator_dir / "example_ct_sm.nii.gz").read_bytes()[:20000])
    cases.append((corrupt, "cannot read as nifti"))
    not_gzip = tmp_path / "plain.nii.gz"
    not_gzip.write_bytes(b"not a scan at all")
    cases.append((not_gzip, "cannot read as nifti"))
    empty = tmp_path / "empty_dicom"
    empty.mkdir()
    cases.append((empty, "holds no DICOM files"))
    one_slice = tmp_path / "one_slice"
    one_slice.mkdir()
    first = sorted((totalsegmentator_dir / "example_ct_dicom").iterdir())[0]
    shutil.copy(first, one_slice / first.name)
    cases.append((one_slice, "single DICOM slice"))
    cases.append((first, "single DICOM file is one 2D slice"))
    nested = tmp_path / "nested"
    (nested / "series").mkdir(parents=True)
    cases.append((nested, "holds subfolders"))
    unknown = tmp_path / "scan.png"
    unknown.write_bytes(b"\x89PNG")
    cases.append((unknown, "unsupported file type"))

    for path, problem in cases:
        with pytest.raises(ScanReadError) as error:
            read_scan(path)
        assert str(error.value).startswith(f"{path}: "), str(error.value)
        assert problem in str(error.value), str(error.value)
        assert isinstance(error.value, ValueError)


def test_trailing_singleton_axis_is_dropped(tmp_path: pathlib.Path) -> None:
    values = np.arange(8 * 8 * 8, dtype=np.int16).reshape(8, 8, 8, 1)
    scan = read_scan(_nifti(tmp_path / "volume.nii.gz", values))
    assert scan.shape == (1, 8, 8, 8)
    np.testing.assert_array_equal(scan[0].numpy(), values[..., 0])


def test_missing_file_is_a_file_not_found_error(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "absent.nii.gz"
    with pytest.raises(FileNotFoundError, match=r"absent\.nii\.gz: no such file"):
        read_scan(missing)
    with pytest.raises(ScanNotFoundError):
        read_label(missing)


def test_gzip_fixture_is_really_truncated(totalsegmentator_dir: pathlib.Path) -> None:
    truncated = (totalsegmentator_dir / "example_ct_sm.nii.gz").read_bytes()[:20000]
    with pytest.raises(EOFError):
        gzip.decompress(truncated)
