"""The Decathlon benchmark adapters: `DecathlonFormat` with a fixed split and class map."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from eva_coralbay.data import adapters
from eva_coralbay.data.adapters import msd
from eva_coralbay.data.adapters.validation import DatasetValidationError
from tests.data.adapter_fixtures import NativeRoots, fresh_layout, isolated_cache, native_roots

__all__ = ["isolated_cache", "native_roots"]  # fixtures: imported to be used

MSD_ADAPTERS = (
    adapters.MSDLiver,
    adapters.MSDLung,
    adapters.MSDPancreas,
    adapters.MSDHepaticVessel,
    adapters.MSDSpleen,
    adapters.MSDColon,
)


def test_every_msd_adapter_is_a_decathlon_format_that_reads_the_layout_through_it() -> None:
    assert {a for a in adapters.SEGMENTATION_ADAPTERS if issubclass(a, msd.MSDAdapter)} == set(
        MSD_ADAPTERS
    )
    for adapter in MSD_ADAPTERS:
        assert issubclass(adapter, adapters.DecathlonFormat), adapter.__name__
        # The layout is parsed in one place; a benchmark fixes only what it declares.
        assert adapter.catalogue is adapters.DecathlonFormat.catalogue
        assert adapter.labelled_cases is adapters.DecathlonFormat.labelled_cases
    # Derived from the task folder: nnU-Net v2's name of the conversion and MONAI's archive.
    assert adapters.MSDHepaticVessel.nnunet_task == "Dataset008_HepaticVessel"
    assert adapters.MSDColon.nnunet_task == "Dataset010_Colon"
    assert [r.filename for r in adapters.MSDSpleen.resources] == ["Task09_Spleen.tar"]
    assert "ROOT/Task09_Spleen/dataset.json" in adapters.MSDSpleen.manual_download


def _as_nnunet_v2(task_dir: Path, target: Path, native_classes: tuple[str, ...]) -> Path:
    """nnUNetv2_convert_MSD_dataset's output: `_0000` images, labels name -> id, no case list."""
    for folder in ("imagesTr", "labelsTr"):
        (target / folder).mkdir(parents=True)
        for path in (task_dir / folder).iterdir():  # the "._" twins come along
            channel = folder == "imagesTr" and not path.name.startswith(".")
            name = path.name.replace(".nii.gz", "_0000.nii.gz") if channel else path.name
            shutil.copy(path, target / folder / name)
    dataset_json = {
        "channel_names": {"0": "CT"},
        "labels": {name: label_id for label_id, name in enumerate(native_classes)},
        "numTraining": 3,
        "file_ending": ".nii.gz",
    }
    (target / "dataset.json").write_text(json.dumps(dataset_json))
    return target


@pytest.mark.parametrize("adapter", MSD_ADAPTERS, ids=lambda a: a.__name__)
def test_the_nnunet_conversion_reads_like_the_decathlon_release(
    adapter: type[msd.MSDAdapter], native_roots: NativeRoots, tmp_path: Path
) -> None:
    release = native_roots(adapter)
    _as_nnunet_v2(
        release / adapter.msd_task, tmp_path / adapter.nnunet_task, adapter.native_classes
    )
    decathlon = adapter(str(release), profile=None, allow_incomplete=True)
    nnunet = adapter(str(tmp_path), profile=None, allow_incomplete=True)
    decathlon.configure()
    nnunet.configure()
    nnunet.validate()
    assert [(c.case_id, c.split) for c in nnunet.cases] == [
        (c.case_id, c.split) for c in decathlon.cases
    ]
    assert {c.split for c in nnunet.cases} == {"train", "val"}
    images = tmp_path / adapter.nnunet_task / "imagesTr"
    assert [c.image for c in nnunet.cases] == [
        images / f"{c.case_id}_0000.nii.gz" for c in nnunet.cases
    ]


def test_the_fixed_split_and_class_map_win_over_dataset_json(tmp_path: Path) -> None:
    root = fresh_layout(adapters.MSDLung, tmp_path / "msd")
    path = root / "Task06_Lung" / "dataset.json"
    dataset_json = json.loads(path.read_text())
    dataset_json["labels"] = {"0": "background", "1": "cancer", "2": "nodule"}
    dataset_json["validation"] = ["lung_001"]
    path.write_text(json.dumps(dataset_json))

    # The generic adapter takes what dataset.json declares ...
    generic = adapters.DecathlonFormat(str(root), profile=None)
    generic.configure()
    assert generic.classes == ["background", "cancer", "nodule"]
    assert [c.case_id for c in generic.cases if c.split == "val"] == ["lung_001"]
    # ... the benchmark keeps its own, and reports the file that contradicts its class map.
    lung = adapters.MSDLung(str(root), profile=None, allow_incomplete=True)
    lung.configure()
    assert lung.classes == ["background", "lung_tumor"]
    assert [c.case_id for c in lung.cases if c.split == "val"] == ["lung_006"]
    with pytest.raises(DatasetValidationError) as error:
        lung.validate()
    assert [(p.path, p.message) for p in error.value.problems] == [
        (
            str(path),
            "declares 3 labels ['background', 'cancer', 'nodule'], MSDLung expects 2 "
            "['background', 'cancer']",
        )
    ]

    # Malformed labels: the one label reader raises for the generic adapter, and the benchmark
    # reports its message among the validation problems, naming the file either way.
    path.write_text(json.dumps({**dataset_json, "labels": {"0": "background", "2": "cancer"}}))
    with pytest.raises(ValueError, match=r"Task06_Lung/dataset\.json: label ids must be 0\.\.1"):
        adapters.DecathlonFormat(str(root), profile=None)
    lung.configure()
    with pytest.raises(DatasetValidationError) as error:
        lung.validate()
    assert [(p.path, p.message) for p in error.value.problems] == [
        (str(path), "label ids must be 0..1, got [0, 2]")
    ]
