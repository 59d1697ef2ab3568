"""The robustness track, checked on toy encoders whose invariances are known, and on real CT."""

from __future__ import annotations

import json
import pathlib
from typing import cast

import nibabel as nib
import numpy as np
import pytest
import torch
from eva.vision.models.networks.backbones.radiology.swin_unetr import SwinUNETREncoder
from torch import nn

from eva_coralbay import cli
from eva_coralbay.data.profile import CORALBAY_PROFILE, PreprocessingProfile
from eva_coralbay.evaluation import robustness
from eva_coralbay.leaderboard import robustness_record

SPACING_MM = 4.0
PROFILE = PreprocessingProfile(spacing=(SPACING_MM, SPACING_MM, SPACING_MM))
"""CoralBay's window on the toy scan's own grid: standardising it resamples nothing."""

SETTINGS = robustness.EmbeddingSettings(roi_size=(64, 64, 64), overlap=0.0)
AIR_HU, TISSUE_HU = -1000.0, 40.0


class ToyEncoder(nn.Module):
    """A fixed random 3x3x3 convolution and ReLU, weighted by position, pooled at two scales.

    With `intensity_blind`, it sees only which voxels are brighter than the middle of each
    window's range: on a scan of two intensities, that mask is the same under every HU window
    that keeps them apart, so its embedding cannot change with the window. Otherwise it sees
    the intensities themselves. The position weights (as a real encoder's position biases
    and borders) make it see where things are, so that a mirrored scan looks different.
    """

    def __init__(self, intensity_blind: bool) -> None:
        super().__init__()
        self.intensity_blind = intensity_blind
        self.conv = nn.Conv3d(1, 8, kernel_size=3, padding=1)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator))
            bias = cast(torch.Tensor, self.conv.bias)
            bias.copy_(torch.randn(bias.shape, generator=generator))

    def forward_features(self, crops: torch.Tensor) -> list[torch.Tensor]:
        if self.intensity_blind:
            low = crops.amin(dim=(1, 2, 3, 4), keepdim=True)
            high = crops.amax(dim=(1, 2, 3, 4), keepdim=True)
            crops = (crops > (low + high) / 2).float()
        features = torch.relu(self.conv(crops))
        ramps = [torch.linspace(0.0, 1.0, size) for size in features.shape[2:]]
        position = 1.0 + ramps[0][:, None, None] + 2 * ramps[1][:, None] + 3 * ramps[2]
        features = features * position
        return [features, nn.functional.avg_pool3d(features, 2)]

    def forward_multiscale(self, maps: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([feature_map.mean(dim=(2, 3, 4)) for feature_map in maps], dim=1)


@pytest.fixture(scope="module")
def toy_scan(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A 64^3 scan at 4 mm in RAS: air around an off-centre, L-shaped block of soft tissue.

    Nothing in it is mirror-symmetric, and it fills exactly one 64^3 window (no padding).
    """
    voxels = np.full((64, 64, 64), AIR_HU, dtype=np.float32)
    voxels[10:40, 12:30, 8:50] = TISSUE_HU
    voxels[10:20, 30:55, 8:20] = TISSUE_HU
    path = tmp_path_factory.mktemp("toy") / "toy.nii.gz"
    nib.save(nib.Nifti1Image(voxels, np.diag([SPACING_MM] * 3 + [1.0])), path)
    return path


def _cosines(measured: robustness.Measurement) -> dict[str, float]:
    return {item["name"]: item["mean_cosine"] for item in measured.perturbations}


def test_an_intensity_blind_encoder_keeps_its_embedding_under_every_window(
    toy_scan: pathlib.Path,
) -> None:
    windows = robustness.select(robustness.default_perturbations(PROFILE), "window")
    assert [item.window for item in windows] == [
        (-1100.0, 900.0),
        (-900.0, 1100.0),
        (-750.0, 750.0),
        (-1500.0, 1500.0),
        (-160.0, 240.0),
        (-1350.0, 150.0),
    ]
    blind = _cosines(robustness.measure(ToyEncoder(True), PROFILE, [toy_scan], windows, SETTINGS))
    seeing = _cosines(robustness.measure(ToyEncoder(False), PROFILE, [toy_scan], windows, SETTINGS))
    assert set(blind) == set(seeing) == {item.name for item in windows}
    for name in blind:
        assert blind[name] == pytest.approx(1.0, abs=1e-9), name
        assert seeing[name] < 1.0 - 1e-7, name


def test_lps_and_ras_input_give_the_same_voxels_and_flips_move_the_embedding(
    toy_scan: pathlib.Path,
) -> None:
    selected = robustness.select(robustness.default_perturbations(PROFILE), "orientation,flip")
    measured = robustness.measure(ToyEncoder(False), PROFILE, [toy_scan], selected, SETTINGS)
    assert measured.orientation_identical is True
    rows = {item["name"]: item["per_scan"][0] for item in measured.perturbations}
    for name in ("input_ras", "input_lps"):
        assert rows[name]["identical_after_profile"] is True
        assert rows[name]["max_abs_voxel_difference"] == 0.0
        assert rows[name]["cosine"] == pytest.approx(1.0, abs=1e-12)
    for name in ("flip_left_right", "flip_superior_inferior"):
        assert rows[name]["cosine"] < 1.0 - 1e-6, name
        assert "identical_after_profile" not in rows[name]


def test_a_flip_mirrors_the_standardised_volume_along_its_anatomical_axis(
    toy_scan: pathlib.Path,
) -> None:
    from eva_coralbay.data.readers import read_scan

    source = read_scan(toy_scan)
    reference = robustness.standardise(source, PROFILE).as_tensor()
    by_name = {item.name: item for item in robustness.default_perturbations(PROFILE)}
    # RAS: left-right is the first voxel axis, superior-inferior the third.
    left_right = robustness.standardise(source, PROFILE, by_name["flip_left_right"]).as_tensor()
    assert torch.equal(left_right, reference.flip(1))
    upside_down = robustness.standardise(
        source, PROFILE, by_name["flip_superior_inferior"]
    ).as_tensor()
    assert torch.equal(upside_down, reference.flip(3))
    # In another profile orientation the same anatomical flip is another voxel axis.
    spl = PreprocessingProfile(orientation="SPL", spacing=PROFILE.spacing)
    spl_reference = robustness.standardise(source, spl).as_tensor()
    spl_flipped = robustness.standardise(source, spl, by_name["flip_superior_inferior"])
    assert torch.equal(spl_flipped.as_tensor(), spl_reference.flip(1))


def test_a_window_with_min_not_below_max_is_refused(
    toy_scan: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match=r"min 200 must be below max 100"):
        robustness.parse_window("200,100")
    with pytest.raises(ValueError, match=r"expected LOW,HIGH"):
        robustness.parse_window("-160")
    with pytest.raises(ValueError, match=r"window_5_5: a window needs min < max"):
        robustness.window_perturbation(5, 5)
    output = tmp_path / "record.json"
    arguments = ["robustness", "--data", str(toy_scan), "--output", str(output)]
    assert cli.main([*arguments, "--window", "240,-160"]) == 1
    assert "--window: window '240,-160': min 240 must be below max -160" in (
        capsys.readouterr().err
    )
    assert not output.exists()


def test_an_unreadable_scan_is_named(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti file")
    torch.manual_seed(0)
    checkpoint = tmp_path / "encoder.pt"
    torch.save(SwinUNETREncoder(feature_size=12).state_dict(), checkpoint)
    output = tmp_path / "record.json"
    arguments = ["robustness", "--data", str(broken), "--checkpoint", str(checkpoint)]
    assert cli.main([*arguments, "--output", str(output), "--device", "cpu"]) == 1
    error = capsys.readouterr().err
    assert "cannot read a scan" in error and str(broken) in error
    assert not output.exists()


def test_the_record_is_validated_before_it_is_written(
    toy_scan: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    selected = robustness.select(robustness.default_perturbations(PROFILE), "window_lung")
    measured = robustness.measure(ToyEncoder(False), PROFILE, [toy_scan], selected, SETTINGS)
    record = robustness.build_record(
        measured,
        model="toy",
        checkpoint=None,
        checkpoint_sha256="0" * 64,
        profile=PROFILE,
        settings=SETTINGS,
    )
    path = robustness_record.write_record(record, tmp_path / "record.json")
    assert robustness_record.read_record(path) == record
    assert record["embedding"]["dim"] == 16 and record["orientation_identical"] is None
    bad = json.loads(json.dumps(record))
    bad["perturbations"][0]["mean_cosine"] = 1.5
    del bad["checkpoint_sha256"]
    with pytest.raises(ValueError, match="invalid robustness record") as raised:
        robustness_record.write_record(bad, tmp_path / "bad.json")
    assert "'checkpoint_sha256' is a required property" in str(raised.value)
    assert "$.perturbations[0].mean_cosine: 1.5 is greater than the maximum of 1" in str(
        raised.value
    )
    assert not (tmp_path / "bad.json").exists()


def test_task_scans_are_its_validation_scans_and_a_probe_task_is_refused(
    tmp_path: pathlib.Path,
) -> None:
    from eva_coralbay.data.synthetic import layouts

    root = layouts.write_decathlon_format(tmp_path / "phantoms", train=(1, 2), val=(3, 4))
    scans = robustness.task_scans("decathlon_format", root)
    assert [pathlib.Path(scan).name for scan in scans] == [
        "phantom_003.nii.gz",
        "phantom_004.nii.gz",
    ]
    with pytest.raises(ValueError, match=r"organmnist.* no whole CT scans"):
        robustness.task_scans("organmnist", tmp_path)
    with pytest.raises(ValueError, match="unknown task 'btvc'"):
        robustness.task_scans("btvc", tmp_path)


@pytest.mark.slow(expected_s=40)
def test_coralbay_robustness_runs_on_a_real_scan(
    totalsegmentator_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # Scan C (LPS, 1.5 mm) cropped to 40 x 40 x 40 voxels: one 64^3 window on every grid.
    image = cast(
        nib.Nifti1Image, nib.load(totalsegmentator_dir / "aorta_report" / "ct_cropped.nii.gz")
    )
    scan = tmp_path / "scan_c.nii.gz"
    nib.save(image.slicer[40:80, 43:83, 62:102], scan)
    torch.manual_seed(0)
    checkpoint = tmp_path / "encoder.pt"
    torch.save(SwinUNETREncoder(feature_size=12).state_dict(), checkpoint)
    output = tmp_path / "robustness.json"
    arguments = [
        "robustness", "--data", str(scan), "--checkpoint", str(checkpoint),
        "--output", str(output), "--roi-size", "64", "--device", "cpu", "--window=-500,500",
    ]  # fmt: skip

    assert cli.main(arguments) == 0
    record = robustness_record.read_record(output)
    assert record["model"] == "radiology/coralbay" and record["checkpoint"] == str(checkpoint)
    assert record["profile"] == CORALBAY_PROFILE.to_dict()
    assert record["embedding"]["dim"] == 24 * 12
    (facts,) = record["scans"]
    assert facts["source_shape"] == [40, 40, 40] and facts["shape"] == [40, 40, 40]
    by_name = {item["name"]: item for item in record["perturbations"]}
    assert list(by_name) == [
        "window_centre_minus_100", "window_centre_plus_100", "window_width_x0.75",
        "window_width_x1.5", "window_soft_tissue", "window_lung", "window_-500_500",
        "spacing_1mm", "spacing_2mm", "input_ras", "input_lps",
        "flip_left_right", "flip_superior_inferior",
    ]  # fmt: skip
    assert record["orientation_identical"] is True
    assert by_name["input_lps"]["mean_cosine"] == pytest.approx(1.0, abs=1e-9)
    # A random encoder is not invariant to any of the rest.
    for name, item in by_name.items():
        assert item["per_scan"][0]["cosine"] == item["mean_cosine"] == item["min_cosine"]
        if not name.startswith("input_"):
            assert -1.0 <= item["mean_cosine"] < 1.0 - 1e-6, name


# ---------------------------------------------------------------------------------------------
# The probe's change on scan-labelled data.


class MeanIntensityEncoder(nn.Module):
    """Sees nothing but how bright a scan is: its embedding is the mean voxel and its square."""

    def forward_features(self, crops: torch.Tensor) -> list[torch.Tensor]:
        return [torch.cat([crops, crops.pow(2)], dim=1)]

    def forward_multiscale(self, maps: list[torch.Tensor]) -> torch.Tensor:
        return maps[0].mean(dim=(2, 3, 4))


def _probe(
    encoder: nn.Module, table: pathlib.Path, perturbations: list[robustness.Perturbation]
) -> robustness.ProbeResult:
    labelled = robustness.labelled_task_scans("scan_table", table, PROFILE)
    assert labelled is not None
    measured = robustness.measure(encoder, PROFILE, labelled.val, perturbations, SETTINGS)
    train = robustness.embed_scans(encoder, PROFILE, labelled.train, SETTINGS)
    return robustness.probe_change(measured, train, labelled)


def test_a_window_shift_costs_an_intensity_probe_its_accuracy(tmp_path: pathlib.Path) -> None:
    from eva_coralbay.data.synthetic import scan_table

    # Classes 100 HU apart: under the window shifted by +100 HU, a dense ball reads exactly as
    # a fat ball read unperturbed.
    table = scan_table.write_scan_table(tmp_path / "data", scan_table.INTENSITY_SCANS)
    windows = robustness.select(
        robustness.default_perturbations(PROFILE), "window_centre_plus_100,window_width_x1.5"
    )
    result = _probe(MeanIntensityEncoder(), table, windows)
    assert result.summary["balanced_accuracy"] == 1.0
    assert result.summary["classes"] == ["dense", "fat"]
    assert (result.summary["train_scans"], result.summary["val_scans"]) == (6, 4)
    shifted = result.per_perturbation["window_centre_plus_100"]
    assert shifted == {"balanced_accuracy": 0.5, "change": -0.5}  # every scan called fat
    assert result.per_perturbation["window_width_x1.5"]["change"] < 0


def test_an_intensity_blind_probe_on_shapes_keeps_its_accuracy_under_every_window(
    tmp_path: pathlib.Path,
) -> None:
    from eva_coralbay.data.synthetic import scan_table

    table = scan_table.write_scan_table(tmp_path / "data", scan_table.SHAPE_SCANS)
    windows = robustness.select(robustness.default_perturbations(PROFILE), "window")
    result = _probe(ToyEncoder(intensity_blind=True), table, windows)
    assert result.summary["balanced_accuracy"] == 1.0
    assert result.per_perturbation == {
        item.name: {"balanced_accuracy": 1.0, "change": 0.0} for item in windows
    }
    # The same encoder seeing intensities is moved by the windows: the cosines say so.
    measured = robustness.measure(
        ToyEncoder(intensity_blind=False),
        PROFILE,
        robustness.labelled_task_scans("scan_table", table, PROFILE).val,  # type: ignore[union-attr]
        windows,
        SETTINGS,
    )
    assert all(item["mean_cosine"] < 1.0 - 1e-7 for item in measured.perturbations)


def test_the_linear_probe_is_deterministic_and_separates_separable_classes() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0, 5.0], [4.0, 0.0, 5.0], [0.0, 4.0, 5.0]])
    targets = [index % 3 for index in range(30)]
    features = centres[targets] + 0.3 * torch.randn(30, 3, generator=generator)
    first = robustness.LinearProbe.fit(features, targets, num_classes=3)
    second = robustness.LinearProbe.fit(features, targets, num_classes=3)
    assert torch.equal(first.weight, second.weight)
    assert first.predict(features).tolist() == targets
    # A feature constant on the training samples is left unscaled, not divided by zero.
    constant = torch.cat([features, torch.ones(30, 1)], dim=1)
    assert robustness.LinearProbe.fit(constant, targets, 3).predict(constant).tolist() == targets
    assert robustness.balanced_accuracy(torch.tensor([0, 0, 0, 1]), [0, 0, 1, 1]) == 0.75
    with pytest.raises(ValueError, match=r"class indices 0\.\.2"):
        robustness.LinearProbe.fit(features, [3] * 30, num_classes=3)


def test_cc_ccii_scans_are_labelled_by_their_fold_tables(tmp_path: pathlib.Path) -> None:
    from eva_coralbay.data.synthetic import cc_ccii

    root = cc_ccii.write_npy_release(tmp_path / "cc-ccii")
    labelled = robustness.labelled_task_scans("cc-ccii", root, PROFILE)
    assert labelled is not None
    assert labelled.classes == ["normal", "common_pneumonia", "novel_coronavirus_pneumonia"]
    for split, sources, targets in (
        ("train", labelled.train, labelled.train_targets),
        ("val", labelled.val, labelled.val_targets),
    ):
        expected = [scan for scan in cc_ccii.DEFAULT_SCANS if scan.split == split]
        assert [pathlib.Path(source.name).name for source in sources] == [
            f"p{scan.patient_id}-s{scan.scan_id}.npy" for scan in expected
        ]
        assert targets == [scan.target for scan in expected]
    # Read through the adapter: grey levels on the profile's window, in HU.
    volume = labelled.val[0].read()
    low, high = PROFILE.intensity_range
    assert low <= float(volume.min()) and float(volume.max()) <= high
    assert robustness.labelled_task_scans("btcv", root, PROFILE) is None


def test_coralbay_robustness_reports_the_probe_of_a_scan_table(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eva_coralbay.data.synthetic import scan_table

    table = scan_table.write_scan_table(tmp_path / "data", scan_table.SHAPE_SCANS)
    torch.manual_seed(0)
    checkpoint = tmp_path / "encoder.pt"
    torch.save(SwinUNETREncoder(feature_size=12).state_dict(), checkpoint)
    output = tmp_path / "robustness.json"
    arguments = [
        "robustness", "--task", "scan_table", "--data-root", str(table), "--task-id", "shapes_ct",
        "--checkpoint", str(checkpoint), "--output", str(output), "--roi-size", "64",
        "--device", "cpu", "--perturbations", "window_centre_plus_100,flip_left_right",
    ]  # fmt: skip
    assert cli.main(arguments) == 0
    record = robustness_record.read_record(output)
    assert record["task"] == {"id": "shapes_ct", "split": "val"}
    val = [scan for scan in scan_table.SHAPE_SCANS if scan.split == "val"]
    assert [facts["scan"] for facts in record["scans"]] == [
        str(table.parent / scan.path) for scan in val
    ]
    summary = record["probe"]
    assert (summary["train_scans"], summary["val_scans"]) == (6, 3)
    assert summary["classes"] == ["ball", "cube", "rod"]
    assert 0.0 <= summary["balanced_accuracy"] <= 1.0
    for item in record["perturbations"]:
        probe = item["probe"]
        assert probe["change"] == pytest.approx(
            probe["balanced_accuracy"] - summary["balanced_accuracy"], abs=1e-12
        )
    assert "probe: balanced accuracy" in capsys.readouterr().out
    # A record without the probe stays valid; a probe block out of range does not.
    del record["probe"]
    for item in record["perturbations"]:
        del item["probe"]
    assert robustness_record.record_problems(record) == []
    bad = robustness_record.read_record(output)
    bad["perturbations"][0]["probe"]["balanced_accuracy"] = 1.5
    assert robustness_record.record_problems(bad) == [
        "$.perturbations[0].probe.balanced_accuracy: 1.5 is greater than the maximum of 1"
    ]

    # A broken table is refused with its line named, and nothing is written.
    table.write_text(table.read_text().replace(",val\n", ",test\n", 1))
    output.unlink()
    assert cli.main(arguments) == 1
    assert f"{table}:" in capsys.readouterr().err and not output.exists()


def test_leaderboard_options_without_submit_are_refused(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["robustness", "--data", str(tmp_path), "--output", str(tmp_path / "r.json")]
    assert cli.main([*command, "--model-id", "mine"]) == 1
    assert "--model-id and --leaderboard-root go with --submit" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
