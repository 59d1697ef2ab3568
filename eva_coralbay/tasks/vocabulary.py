"""The canonical class vocabulary that every benchmark's labels are mapped onto."""

from __future__ import annotations

# The TotalSegmentator v2 "total" task, ids 1..117 in order (id 0 is background). Source:
# github.com/wasserth/TotalSegmentator, totalsegmentator/map_to_binary.py, class_map["total"].
TOTALSEGMENTATOR_V2_CLASSES: tuple[str, ...] = (
    "spleen",
    "kidney_right",
    "kidney_left",
    "gallbladder",
    "liver",
    "stomach",
    "pancreas",
    "adrenal_gland_right",
    "adrenal_gland_left",
    "lung_upper_lobe_left",
    "lung_lower_lobe_left",
    "lung_upper_lobe_right",
    "lung_middle_lobe_right",
    "lung_lower_lobe_right",
    "esophagus",
    "trachea",
    "thyroid_gland",
    "small_bowel",
    "duodenum",
    "colon",
    "urinary_bladder",
    "prostate",
    "kidney_cyst_left",
    "kidney_cyst_right",
    "sacrum",
    "vertebrae_S1",
    "vertebrae_L5",
    "vertebrae_L4",
    "vertebrae_L3",
    "vertebrae_L2",
    "vertebrae_L1",
    "vertebrae_T12",
    "vertebrae_T11",
    "vertebrae_T10",
    "vertebrae_T9",
    "vertebrae_T8",
    "vertebrae_T7",
    "vertebrae_T6",
    "vertebrae_T5",
    "vertebrae_T4",
    "vertebrae_T3",
    "vertebrae_T2",
    "vertebrae_T1",
    "vertebrae_C7",
    "vertebrae_C6",
    "vertebrae_C5",
    "vertebrae_C4",
    "vertebrae_C3",
    "vertebrae_C2",
    "vertebrae_C1",
    "heart",
    "aorta",
    "pulmonary_vein",
    "brachiocephalic_trunk",
    "subclavian_artery_right",
    "subclavian_artery_left",
    "common_carotid_artery_right",
    "common_carotid_artery_left",
    "brachiocephalic_vein_left",
    "brachiocephalic_vein_right",
    "atrial_appendage_left",
    "superior_vena_cava",
    "inferior_vena_cava",
    "portal_vein_and_splenic_vein",
    "iliac_artery_left",
    "iliac_artery_right",
    "iliac_vena_left",
    "iliac_vena_right",
    "humerus_left",
    "humerus_right",
    "scapula_left",
    "scapula_right",
    "clavicula_left",
    "clavicula_right",
    "femur_left",
    "femur_right",
    "hip_left",
    "hip_right",
    "spinal_cord",
    "gluteus_maximus_left",
    "gluteus_maximus_right",
    "gluteus_medius_left",
    "gluteus_medius_right",
    "gluteus_minimus_left",
    "gluteus_minimus_right",
    "autochthon_left",
    "autochthon_right",
    "iliopsoas_left",
    "iliopsoas_right",
    "brain",
    "skull",
    "rib_left_1",
    "rib_left_2",
    "rib_left_3",
    "rib_left_4",
    "rib_left_5",
    "rib_left_6",
    "rib_left_7",
    "rib_left_8",
    "rib_left_9",
    "rib_left_10",
    "rib_left_11",
    "rib_left_12",
    "rib_right_1",
    "rib_right_2",
    "rib_right_3",
    "rib_right_4",
    "rib_right_5",
    "rib_right_6",
    "rib_right_7",
    "rib_right_8",
    "rib_right_9",
    "rib_right_10",
    "rib_right_11",
    "rib_right_12",
    "sternum",
    "costal_cartilages",
)

# Structures that benchmarks label but TotalSegmentator v2 does not: lesions, unsided organs and a
# few organs outside its list. Each keeps the TotalSegmentator naming style (snake_case, side last).
EXTRA_CLASSES: tuple[str, ...] = (
    "kidney",
    "adrenal_gland",
    "rectum",
    "femur_head_left",
    "femur_head_right",
    "prostate_or_uterus",
    "hepatic_vessel",
    "liver_tumor",
    "kidney_tumor",
    "kidney_cyst",
    "pancreas_tumor",
    "lung_tumor",
    "colon_tumor",
)

BACKGROUND = "background"
"""The name of label 0 in every segmentation task."""

CANONICAL_CLASSES: tuple[str, ...] = (BACKGROUND, *TOTALSEGMENTATOR_V2_CLASSES, *EXTRA_CLASSES)
"""The whole vocabulary: background, the TotalSegmentator v2 classes, then the extra ones."""


def check_canonical(names: tuple[str, ...] | list[str], owner: str) -> None:
    """Raises when a class map uses a name outside the canonical vocabulary.

    Args:
        names: The canonical names a class map assigns, in label-id order.
        owner: Who owns the class map, for the error message.

    Raises:
        ValueError: Naming every unknown or repeated name.
    """
    known = set(CANONICAL_CLASSES)
    unknown = [name for name in names if name not in known]
    repeated = sorted({name for name in names if list(names).count(name) > 1})
    if unknown or repeated:
        raise ValueError(
            f"{owner}: class map names outside the canonical vocabulary {unknown}"
            + (f", repeated {repeated}" if repeated else "")
        )
