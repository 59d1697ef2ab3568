import ast
import importlib.util
import pathlib

import pytest

from eva_coralbay.leaderboard import LeaderboardError, get_metric, tasks

BUILTIN = tasks.builtin_registry()
get_task = BUILTIN.get


def _eva_dataset_names() -> set[str]:
    """The dataset classes eva exports, read from its source without importing eva (slow)."""
    spec = importlib.util.find_spec("eva")
    assert spec is not None and spec.submodule_search_locations
    source = pathlib.Path(spec.submodule_search_locations[0]) / "vision/data/datasets/__init__.py"
    tree = ast.parse(source.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "__all__":
            return {ast.literal_eval(item) for item in node.value.elts}  # type: ignore[attr-defined]
    raise AssertionError("eva.vision.data.datasets has no __all__")


def test_eva_dataset_names_exist_in_eva() -> None:
    named = {name for task in BUILTIN for name in task.eva_datasets}
    assert named <= _eva_dataset_names()
    assert {"BTCV", "LiTS17", "MSDTask7Pancreas", "KiTS23", "CC_CCII", "LUNA25"} <= named


def test_registry_covers_the_issue_tasks() -> None:
    expected = {
        "btcv": ("segmentation", "BTCV"),
        "lits17": ("segmentation", "LiTS17"),
        "msd_task7_pancreas": ("segmentation", "MSDPancreas"),
        "totalsegmentator_v2": ("segmentation", "TotalSegmentatorV2"),
        "amos22_ct": ("segmentation", "AMOS22CT"),
        "kits23": ("segmentation", "KiTS23"),
        "word": ("segmentation", "WORD"),
        "flare22": ("segmentation", "FLARE22"),
        "msd_task3_liver": ("segmentation", "MSDLiver"),
        "msd_task6_lung": ("segmentation", "MSDLung"),
        "msd_task8_hepatic_vessel": ("segmentation", "MSDHepaticVessel"),
        "msd_task9_spleen": ("segmentation", "MSDSpleen"),
        "msd_task10_colon": ("segmentation", "MSDColon"),
        "organmnist": ("classification", "OrganMNIST3D"),
        "nodulemnist": ("classification", "NoduleMNIST3D"),
        "cc-ccii": ("classification", "CC_CCII"),
    }
    for task_id, (kind, adapter) in expected.items():
        task = get_task(task_id)
        assert task.type == kind
        assert adapter in task.coralbay_datasets
        path = f"eva_coralbay.data.adapters.{adapter}"
        assert BUILTIN.for_dataset_class(path) == task_id
    for task_id in ("chaos", "cc-ccii", "luna25"):
        assert get_task(task_id).type in tasks.TASK_TYPES
    # The demo's phantom tasks are no built-in tasks: the demo declares them in its tasks.yaml.
    assert not [task for task in BUILTIN if task.synthetic]


def test_metrics_and_eva_keys() -> None:
    for task in BUILTIN:
        if task.type == "segmentation":
            assert (task.metric, task.eva_metric) == ("dice", "DiceScore")
        else:
            assert task.metric == "balanced_accuracy"
            assert task.eva_metric in ("BinaryBalancedAccuracy", "MulticlassAccuracy")
        assert task.direction == "higher"
    assert get_task("nodulemnist").eva_metric == "BinaryBalancedAccuracy"
    assert get_task("organmnist").eva_metric == "MulticlassAccuracy"


def test_unknown_task_or_metric_fails_loudly() -> None:
    with pytest.raises(LeaderboardError, match="unknown task 'btcv2'; registered tasks: btcv"):
        get_task("btcv2")
    with pytest.raises(LeaderboardError, match="unknown metric 'auc'"):
        get_metric("auc")
    with pytest.raises(LeaderboardError, match="unknown metric 'iou'"):
        tasks.Task(
            id="x",
            display_name="X",
            type="segmentation",
            metric="iou",
            eva_metric="MeanIoU",
            citation="c",
            url="u",
            image_sources=("x",),
        )
    with pytest.raises(LeaderboardError, match="invalid task id"):
        tasks.Task(
            id="../x",
            display_name="X",
            type="segmentation",
            metric="dice",
            eva_metric="DiceScore",
            citation="c",
            url="u",
            image_sources=("x",),
        )


@pytest.mark.parametrize(
    ("path", "task_id"),
    [
        ("eva.vision.datasets.BTCV", "btcv"),
        ("eva.vision.data.datasets.MSDTask7Pancreas", "msd_task7_pancreas"),
        ("eva.vision.data.datasets.classification.cc_ccii.CC_CCII", "cc-ccii"),
        ("eva_coralbay.data.adapters.msd.MSDSpleen", "msd_task9_spleen"),
        ("eva.datasets.EmbeddingsClassificationDataset", None),
        ("other.package.BTCV", None),
        ("eva_coralbay.data.adapters.Unknown", None),
    ],
)
def test_dataset_class_lookup(path: str, task_id: str | None) -> None:
    assert BUILTIN.for_dataset_class(path) == task_id


def test_contamination() -> None:
    btcv, organmnist, nodules = get_task("btcv"), get_task("organmnist"), get_task("nodulemnist")
    assert BUILTIN.is_contaminated(btcv, ["btcv"])
    assert not BUILTIN.is_contaminated(btcv, ["lits", "totalsegmentator"])
    # OrganMNIST3D is cut from LiTS; a task id stands for its images; MSD contains LiTS.
    assert BUILTIN.is_contaminated(organmnist, ["lits17"])
    assert BUILTIN.is_contaminated(organmnist, ["msd"])
    assert BUILTIN.is_contaminated(nodules, ["luna16"])
    assert not BUILTIN.is_contaminated(nodules, [])
