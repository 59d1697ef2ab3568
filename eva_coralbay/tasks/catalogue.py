"""The benchmarks: one frozen record each, read by the adapters, the configs and the leaderboard.

Adding a benchmark means one record here and, where this project reads its data, one adapter in
`eva_coralbay.data.adapters` named by the record.
"""

from __future__ import annotations

from eva_coralbay.tasks import vocabulary
from eva_coralbay.tasks.benchmark import Benchmark

_MSD_CITATION = (
    "Antonelli et al., The Medical Segmentation Decathlon, Nature Communications 13, 4128 (2022)"
)
_MSD_HOMEPAGE = "http://medicaldecathlon.com/"
_MSD_LICENSE = "CC BY-SA 4.0 (as stated in every task's dataset.json)"
_MEDMNIST_CITATION = (
    "Yang et al., MedMNIST v2: a large-scale lightweight benchmark for 2D and 3D biomedical "
    "image classification, Scientific Data 10, 41 (2023)"
)


def msd(task_id: str, task: str, **facts: object) -> Benchmark:
    """A Medical Segmentation Decathlon task: the facts all ten share, and its own."""
    return Benchmark(
        id=task_id,
        title=f"Medical Segmentation Decathlon {task}",
        type="segmentation",
        homepage=_MSD_HOMEPAGE,
        license=_MSD_LICENSE,
        citation=_MSD_CITATION,
        config=f"radiology/online/segmentation/{task_id}.yaml",
        **facts,  # type: ignore[arg-type]
    )


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        id="btcv",
        title="BTCV abdomen (Multi-Atlas Labeling Beyond the Cranial Vault)",
        display_name="BTCV",
        type="segmentation",
        homepage="https://www.synapse.org/#!Synapse:syn3193805",
        license=(
            "Synapse terms of use for syn3193805 (registration required); eva's BTCV "
            "config states CC BY 4.0 - unverified"
        ),
        citation=(
            "Landman et al., MICCAI 2015 Multi-Atlas Labeling Beyond the Cranial Vault challenge"
        ),
        split_source=(
            "dataset_0.json of MONAI's / VoCo's BTCV fine-tuning "
            "(github.com/Luffy03/Large-Scale-Medical, "
            "Downstream/monai/BTCV/dataset/dataset_0.json); eva's BTCV uses the same "
            "24/6 split"
        ),
        classes=(
            "background",
            "spleen",
            "kidney_right",
            "kidney_left",
            "gallbladder",
            "esophagus",
            "liver",
            "stomach",
            "aorta",
            "inferior_vena_cava",
            "portal_vein_and_splenic_vein",
            "pancreas",
            "adrenal_gland_right",
            "adrenal_gland_left",
        ),
        native_classes=(
            "background",
            "spleen",
            "right kidney",
            "left kidney",
            "gallbladder",
            "esophagus",
            "liver",
            "stomach",
            "aorta",
            "inferior vena cava",
            "portal vein and splenic vein",
            "pancreas",
            "right adrenal gland",
            "left adrenal gland",
        ),
        expected_cases=(("train", 24), ("val", 6)),
        image_sources=("btcv",),
        eva_datasets=("BTCV",),
        adapter="BTCV",
        config="radiology/online/segmentation/btcv.yaml",
    ),
    Benchmark(
        id="lits17",
        title="LiTS17 Liver Tumor Segmentation Benchmark",
        display_name="LiTS17",
        type="segmentation",
        homepage="https://competitions.codalab.org/competitions/17094",
        license="CC BY-NC-SA 4.0 (per the LiTS paper, arXiv:1901.04056)",
        citation=(
            "Bilic et al., The Liver Tumor Segmentation Benchmark (LiTS), Medical "
            "Image Analysis 84, 102680 (2023)"
        ),
        split_source=(
            "VoCo's dataset_lits.json (github.com/Luffy03/Large-Scale-Medical, "
            "Downstream/monai/LiTs/dataset_lits.json): 23 validation cases, the other"
            " 108 train. eva's LiTS17 has the same 23 validation cases but leaves "
            "cases 68 and 69 out of train"
        ),
        classes=("background", "liver", "liver_tumor"),
        native_classes=("background", "liver", "tumor"),
        expected_cases=(("train", 108), ("val", 23)),
        image_sources=("lits",),
        eva_datasets=("LiTS17",),
        adapter="LiTS17",
        config="radiology/online/segmentation/lits17.yaml",
    ),
    msd(
        task_id="msd_task7_pancreas",
        task="Task07 Pancreas",
        display_name="MSD Pancreas",
        split_source=(
            "eva's MSDTask7Pancreas "
            "(eva/vision/data/datasets/segmentation/metadata/_msd_task7_pancreas.py, "
            "from VoCo's Hugging Face mirror Luffy503/VoCo_Downstream): 24 validation"
            " cases, the other 257 train"
        ),
        classes=("background", "pancreas", "pancreas_tumor"),
        native_classes=("background", "pancreas", "cancer"),
        expected_cases=(("train", 257), ("val", 24)),
        image_sources=("msd_pancreas",),
        adapter="MSDPancreas",
        eva_datasets=("MSDTask7Pancreas",),
    ),
    Benchmark(
        id="totalsegmentator_v2",
        title="TotalSegmentator v2 (117 classes)",
        display_name="TotalSegmentator v2",
        type="segmentation",
        homepage="https://zenodo.org/records/10047292",
        license="CC BY 4.0 (Zenodo record 10047292)",
        citation=(
            "Wasserthal et al., TotalSegmentator: robust segmentation of 104 anatomic"
            " structures in CT images, Radiology: Artificial Intelligence 5, e230024 "
            "(2023)"
        ),
        split_source="the `split` column of the release's meta.csv",
        classes=(vocabulary.BACKGROUND, *vocabulary.TOTALSEGMENTATOR_V2_CLASSES),
        image_sources=("totalsegmentator",),
        adapter="TotalSegmentatorV2",
        config="radiology/online/segmentation/totalsegmentator_v2.yaml",
    ),
    Benchmark(
        id="amos22_ct",
        title="AMOS22 abdominal multi-organ segmentation (CT)",
        display_name="AMOS22 (CT)",
        type="segmentation",
        homepage="https://amos22.grand-challenge.org/",
        license="CC BY 4.0 (Zenodo record 7262581)",
        citation=(
            "Ji et al., AMOS: a large-scale abdominal multi-organ benchmark for "
            "versatile medical image segmentation, NeurIPS Datasets and Benchmarks "
            "(2022)"
        ),
        split_source=(
            "the official split of the release: imagesTr (train) and imagesVa (val), CT ids <= 500"
        ),
        classes=(
            "background",
            "spleen",
            "kidney_right",
            "kidney_left",
            "gallbladder",
            "esophagus",
            "liver",
            "stomach",
            "aorta",
            "inferior_vena_cava",
            "pancreas",
            "adrenal_gland_right",
            "adrenal_gland_left",
            "duodenum",
            "urinary_bladder",
            "prostate_or_uterus",
        ),
        native_classes=(
            "background",
            "spleen",
            "right kidney",
            "left kidney",
            "gall bladder",
            "esophagus",
            "liver",
            "stomach",
            "arota",
            "postcava",
            "pancreas",
            "right adrenal gland",
            "left adrenal gland",
            "duodenum",
            "bladder",
            "prostate/uterus",
        ),
        expected_cases=(("train", 200), ("val", 100)),
        image_sources=("amos22",),
        adapter="AMOS22CT",
        config="radiology/online/segmentation/amos22_ct.yaml",
    ),
    Benchmark(
        id="kits23",
        title="KiTS23 Kidney and Kidney Tumor Segmentation Challenge",
        display_name="KiTS23",
        type="segmentation",
        homepage="https://kits-challenge.org/kits23/",
        license=(
            "CC BY-NC-SA 4.0 as for the KiTS19 data release - unverified for KiTS23 "
            "(eva states MIT, the licence of the kits23 code repository)"
        ),
        citation="Heller et al., The KiTS21 challenge, arXiv:2307.01984 (2023); KiTS23 challenge",
        split_source=(
            "VoCo's dataset_kits.json (github.com/Luffy03/Large-Scale-Medical, "
            "Downstream/monai/KiTs/dataset_kits.json): 24 validation cases, the other"
            " 465 train. eva's KiTS23 has the same validation cases but trains on "
            "cases 0-299 only"
        ),
        classes=("background", "kidney", "kidney_tumor", "kidney_cyst"),
        native_classes=("background", "kidney", "tumor", "cyst"),
        expected_cases=(("train", 465), ("val", 24)),
        image_sources=("kits",),
        eva_datasets=("KiTS23",),
        adapter="KiTS23",
        config="radiology/online/segmentation/kits23.yaml",
    ),
    Benchmark(
        id="word",
        title="WORD (Whole abdominal ORgan Dataset)",
        display_name="WORD",
        type="segmentation",
        homepage="https://github.com/HiLab-git/WORD",
        license=(
            "GPL-3.0 as stated in its dataset.json; research use only (non-"
            "commercial) per the WORD repository"
        ),
        citation=(
            "Luo et al., WORD: a large scale dataset, benchmark and clinical "
            "applicable study for abdominal organ segmentation from CT image, Medical"
            " Image Analysis 82, 102642 (2022)"
        ),
        split_source=(
            "the official split of the release (imagesTr / imagesVal / imagesTs "
            "folders), as used by VoCo and eva"
        ),
        classes=(
            "background",
            "liver",
            "spleen",
            "kidney_left",
            "kidney_right",
            "stomach",
            "gallbladder",
            "esophagus",
            "pancreas",
            "duodenum",
            "colon",
            "small_bowel",
            "adrenal_gland",
            "rectum",
            "urinary_bladder",
            "femur_head_left",
            "femur_head_right",
        ),
        native_classes=(
            "background",
            "liver",
            "spleen",
            "left_kidney",
            "right_kidney",
            "stomach",
            "gallbladder",
            "esophagus",
            "pancreas",
            "duodenum",
            "colon",
            "intestine",
            "adrenal",
            "rectum",
            "bladder",
            "Head_of_femur_L",
            "Head_of_femur_R",
        ),
        expected_cases=(("train", 100), ("val", 20)),
        image_sources=("word",),
        eva_datasets=("WORD",),
        adapter="WORD",
        config="radiology/online/segmentation/word.yaml",
    ),
    Benchmark(
        id="flare22",
        title="FLARE22 abdominal organ segmentation (labelled training cases)",
        display_name="FLARE22",
        type="segmentation",
        homepage="https://flare22.grand-challenge.org/",
        license="CC BY-NC-SA 4.0 (Zenodo record 7860267)",
        citation=(
            "Ma et al., Unleashing the strengths of unlabelled data in deep learning-"
            "assisted pan-cancer abdominal organ quantification: the FLARE22 "
            "challenge, Lancet Digital Health 6, e815 (2024)"
        ),
        split_source=(
            "VoCo's FLARE22 dataset.json (github.com/Luffy03/VoCo, "
            "Finetune/Flare22/dataset/dataset.json): cases 1-10 validation, 11-50 "
            "train. eva's FLARE22 validates on 1-11"
        ),
        classes=(
            "background",
            "liver",
            "kidney_right",
            "spleen",
            "pancreas",
            "aorta",
            "inferior_vena_cava",
            "adrenal_gland_right",
            "adrenal_gland_left",
            "gallbladder",
            "esophagus",
            "stomach",
            "duodenum",
            "kidney_left",
        ),
        native_classes=(
            "background",
            "liver",
            "right kidney",
            "spleen",
            "pancreas",
            "aorta",
            "inferior vena cava",
            "right adrenal gland",
            "left adrenal gland",
            "gallbladder",
            "esophagus",
            "stomach",
            "duodenum",
            "left kidney",
        ),
        expected_cases=(("train", 40), ("val", 10)),
        image_sources=("flare22",),
        eva_datasets=("FLARE22",),
        adapter="FLARE22",
        config="radiology/online/segmentation/flare22.yaml",
    ),
    Benchmark(
        id="chaos",
        title="CHAOS (CT)",
        display_name="CHAOS (CT)",
        type="segmentation",
        homepage="https://chaos.grand-challenge.org/",
        citation=(
            "Kavur et al., CHAOS challenge - combined (CT-MR) healthy abdominal organ"
            " segmentation, Medical Image Analysis 69, 101950 (2021)"
        ),
        license="CC BY-SA 4.0 (Zenodo record 3431873)",
        split_source=(
            "this project: the 20 CT training cases in id order, every fifth (8, 19, 25, 30) "
            "to validation. The seeded eva numbers come from an unpublished split, so they are "
            "not the same protocol"
        ),
        classes=("background", "liver"),
        expected_cases=(("train", 16), ("val", 4)),
        image_sources=("chaos",),
        adapter="CHAOS",
        config="radiology/online/segmentation/chaos.yaml",
    ),
    msd(
        task_id="msd_task3_liver",
        task="Task03 Liver",
        display_name="MSD Liver",
        split_source=(
            "VoCo's dataset_lits.json (github.com/Luffy03/Large-Scale-Medical, "
            "Downstream/monai/LiTs/dataset_lits.json, written for these liver_N "
            "files): 23 validation cases, the other 108 train"
        ),
        classes=("background", "liver", "liver_tumor"),
        native_classes=("background", "liver", "cancer"),
        expected_cases=(("train", 108), ("val", 23)),
        image_sources=("lits",),
        adapter="MSDLiver",
    ),
    msd(
        task_id="msd_task6_lung",
        task="Task06 Lung",
        display_name="MSD Lung",
        split_source=(
            "VoCo's dataset_MSD_Lung.json (github.com/Luffy03/Large-Scale-Medical, "
            "Downstream/monai/Lung/dataset_MSD_Lung.json): 13 validation cases, the "
            "other 50 train"
        ),
        classes=("background", "lung_tumor"),
        native_classes=("background", "cancer"),
        expected_cases=(("train", 50), ("val", 13)),
        image_sources=("msd_lung",),
        adapter="MSDLung",
    ),
    msd(
        task_id="msd_task8_hepatic_vessel",
        task="Task08 Hepatic Vessel",
        display_name="MSD Hepatic Vessel",
        split_source=(
            "VoCo's vessel.json (github.com/Luffy03/Large-Scale-Medical, "
            "Downstream/monai/Vessel/vessel.json): 61 validation cases, the other 242"
            " train"
        ),
        classes=("background", "hepatic_vessel", "liver_tumor"),
        native_classes=("background", "vessel", "tumour"),
        expected_cases=(("train", 242), ("val", 61)),
        image_sources=("msd_hepatic_vessel",),
        adapter="MSDHepaticVessel",
    ),
    msd(
        task_id="msd_task9_spleen",
        task="Task09 Spleen",
        display_name="MSD Spleen",
        split_source=(
            "VoCo's spleen.json (github.com/Luffy03/Large-Scale-Medical, "
            "Downstream/monai/Spleen/spleen.json): 9 validation cases, the other 32 "
            "train"
        ),
        classes=("background", "spleen"),
        native_classes=(),
        expected_cases=(("train", 32), ("val", 9)),
        image_sources=("msd_spleen",),
        adapter="MSDSpleen",
    ),
    msd(
        task_id="msd_task10_colon",
        task="Task10 Colon",
        display_name="MSD Colon",
        split_source=(
            "VoCo's colon.json (github.com/Luffy03/Large-Scale-Medical, "
            "Downstream/monai/Colon/colon.json): 26 validation cases, the other 100 "
            "train"
        ),
        classes=("background", "colon_tumor"),
        native_classes=("background", "colon cancer primaries"),
        expected_cases=(("train", 100), ("val", 26)),
        image_sources=("msd_colon",),
        adapter="MSDColon",
    ),
    Benchmark(
        id="organmnist",
        title="OrganMNIST3D",
        display_name="OrganMNIST3D",
        type="classification",
        homepage="https://medmnist.com/",
        citation=_MEDMNIST_CITATION,
        classes=(
            "liver",
            "kidney-right",
            "kidney-left",
            "femur-right",
            "femur-left",
            "bladder",
            "heart",
            "lung-right",
            "lung-left",
            "spleen",
            "pancreas",
        ),
        image_sources=("lits",),
        eva_datasets=("OrganMNIST3D",),
        adapter="OrganMNIST3D",
        config="radiology/offline/classification/organmnist.yaml",
    ),
    Benchmark(
        id="nodulemnist",
        title="NoduleMNIST3D",
        display_name="NoduleMNIST3D",
        type="classification",
        homepage="https://medmnist.com/",
        citation=_MEDMNIST_CITATION,
        classes=("benign", "malignant"),
        image_sources=("lidc_idri",),
        eva_datasets=("NoduleMNIST3D",),
        adapter="NoduleMNIST3D",
        config="radiology/offline/classification/nodulemnist.yaml",
    ),
    Benchmark(
        id="totalsegmentator_v2_organs",
        title="TotalSegmentator v2 organs",
        display_name="TotalSegmentator v2 organs",
        type="classification",
        homepage="https://zenodo.org/records/10047292",
        citation=(
            "Organ patches (64^3 voxels of the model's grid) around ten organs of "
            "TotalSegmentator v2; Wasserthal et al., Radiology: Artificial "
            "Intelligence 5, e230024 (2023)"
        ),
        classes=(
            "spleen",
            "kidney_right",
            "kidney_left",
            "gallbladder",
            "liver",
            "stomach",
            "pancreas",
            "urinary_bladder",
            "heart",
            "aorta",
        ),
        image_sources=("totalsegmentator",),
        config="radiology/offline/classification/organ_patches.yaml",
    ),
    Benchmark(
        id="cc-ccii",
        title="CC-CCII",
        display_name="CC-CCII",
        type="classification",
        homepage="http://ncov-ai.big.ac.cn/download",
        citation=(
            "Zhang et al., Clinically applicable AI system for accurate diagnosis, "
            "quantitative measurements, and prognosis of COVID-19 pneumonia using "
            "computed tomography, Cell 181, 1423 (2020)"
        ),
        license=(
            "terms of the China National Center for Bioinformation's download page "
            "(http://ncov-ai.big.ac.cn/download); no licence name could be verified from here"
        ),
        split_source=(
            "VoCo's fold tables CC_CCII_fold0_{train,valid}.csv (github.com/Luffy03/"
            "Large-Scale-Medical, Downstream/monai/CC-CCII/csv/), the split eva's CC_CCII "
            "reads: 2514 / 1664 scans, no patient in both; without them (slice-folder release "
            "only) one patient in three by a SHA-256 of the id, which is not eva's split"
        ),
        classes=("normal", "common_pneumonia", "novel_coronavirus_pneumonia"),
        native_classes=("Normal", "CP", "NCP"),
        expected_cases=(("train", 2514), ("val", 1664)),
        image_sources=("cc_ccii",),
        eva_datasets=("CC_CCII",),
        adapter="CC_CCII",
        config="radiology/offline/classification/cc_ccii.yaml",
    ),
    Benchmark(
        id="luna25",
        title="LUNA25",
        display_name="LUNA25",
        type="classification",
        homepage="https://luna25.grand-challenge.org/",
        citation=(
            "LUNA25: lung nodule malignancy risk estimation challenge (2025), scans "
            "from the National Lung Screening Trial"
        ),
        license="CC BY 4.0 as stated on the release's Zenodo records (unverified from here)",
        split_source=(
            "this project: by patient, one in five (a SHA-256 of PatientID) to validation, "
            "so no patient is in two splits. eva's LUNA25 protocol (64x128x128 voxel patches "
            "of the native grid) is not this one: the seeded numbers are not comparable"
        ),
        classes=("benign", "malignant"),
        image_sources=("nlst",),
        eva_datasets=("LUNA25",),
        adapter="LUNA25",
        config="radiology/offline/classification/luna25.yaml",
    ),
)
"""Every benchmark, in the order the leaderboard shows them."""

CATALOGUE: dict[str, Benchmark] = {benchmark.id: benchmark for benchmark in BENCHMARKS}
"""The benchmarks by task id."""
