"""A leaderboard root's own tasks (tasks.yaml): boarded end to end, checked, kept to their root."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pandas as pd
import pytest

from eva_coralbay import cli
from eva_coralbay.leaderboard import LeaderboardError, Registry, builtin_registry, task_file
from eva_coralbay.leaderboard.build import build
from eva_coralbay.leaderboard.submit import submit_run
from eva_coralbay.leaderboard.validate import validate
from tests.conftest import REPOSITORY_ROOT
from tests.leaderboard import eva_output
from tests.leaderboard.conftest import snapshot

DOC = REPOSITORY_ROOT / "docs" / "leaderboard.md"
DECATHLON_CONFIG = (
    REPOSITORY_ROOT / "configs" / "radiology" / "online" / "segmentation" / "decathlon_format.yaml"
)
PRIVATE = "stelsewhere_abdomen_ct"
"""The segmentation task the documented tasks.yaml declares."""


def documented_tasks_file() -> str:
    """The complete tasks.yaml example of docs/leaderboard.md."""
    found = re.findall(r"```yaml\n(# tasks\.yaml.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(found) == 1, "docs/leaderboard.md has one complete tasks.yaml example"
    return found[0]


def _declare(root: pathlib.Path, text: str) -> pathlib.Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / task_file.FILENAME
    path.write_text(text)
    return path


def _private_session(tmp_path: pathlib.Path, model: str, dice: float) -> pathlib.Path:
    """A run of the shipped DecathlonFormat config with TASK_ID set, as eva leaves it.

    The config's dataset class (DecathlonFormat) names no task: the output folder
    logs/<model>/<TASK_ID>, which the config derives from TASK_ID, does.
    """
    env = {"TASK_ID": PRIVATE, "NUM_CLASSES": "4", "MODEL_NAME": f"radiology/{model}"}
    session = eva_output.write_session(
        tmp_path / "logs" / "radiology" / model / PRIVATE,
        DECATHLON_CONFIG.read_text(),
        eva_output.segmentation_metrics(eva_output.dice_runs(dice)),
        env=env,
    )
    generator = np.random.default_rng(len(model))
    rows = [
        {"case_id": f"case_{case:03d}", "class": organ, "score": float(score)}
        for case in range(12)
        for organ, score in zip(
            ("pancreas", "spleen", "liver"),
            np.clip(dice + generator.normal(0, 0.04, 3) - [0.1, 0.0, 0.05], 0, 1),
            strict=True,
        )
    ]
    pd.DataFrame(rows).to_parquet(session / "per_case_scores.parquet")
    return session


def test_documented_tasks_file_boards_a_private_task_end_to_end(
    root: pathlib.Path, tmp_path: pathlib.Path, segmentation_session: pathlib.Path
) -> None:
    _declare(root, documented_tasks_file())
    registry = Registry.for_root(root)
    assert [task.id for task in registry.declared()] == [PRIVATE, f"{PRIVATE}_organs"]
    organs = registry.get(f"{PRIVATE}_organs")
    assert (organs.metric, organs.eva_metric) == ("balanced_accuracy", "MulticlassAccuracy")
    assert registry.benchmark(PRIVATE).config == (
        "radiology/online/segmentation/decathlon_format.yaml"
    )

    for model, dice in (("coralbay", 0.83), ("voco_b", 0.79)):
        session = _private_session(tmp_path, model, dice)
        assert cli.main(["leaderboard", "submit", str(session), "--root", str(root)]) == 0
        entry = (root / "submissions" / model / f"{PRIVATE}.json").read_text()
        assert f'"task_id": "{PRIVATE}"' in entry and '"eva_metric_key": "val/DiceScore"' in entry
    # A built-in task on the same board.
    assert cli.main(["leaderboard", "submit", str(segmentation_session), "--root", str(root)]) == 0
    assert cli.main(["leaderboard", "build", "--root", str(root)]) == 0
    assert validate(root) == []

    readme = (root / "README.md").read_text()
    assert "| Model | BTCV | St Elsewhere abdomen CT |" in readme
    # Both tasks count: the private task is real data, not synthetic.
    overall = [row.split(" | ") for row in readme.splitlines() if row.startswith("| 1 | ")]
    assert overall == [["| 1", "coralbay", "—", "0.815", "0.815", "—", "1.00", "2/2", "? |"]]
    assert (
        f"| St Elsewhere abdomen CT | `{PRIVATE}` | segmentation | Dice (eva `DiceScore`) | "
        "stelsewhere_ct | Internal cohort of St Elsewhere hospital (IRB 2023-117), not public |"
    ) in readme
    index = (root / "site" / "index.html").read_text()
    assert f'<a href="tasks/{PRIVATE}.html">St Elsewhere abdomen CT</a>' in index
    page = (root / "site" / "tasks" / f"{PRIVATE}.html").read_text()
    assert "<h1>St Elsewhere abdomen CT</h1>" in page
    assert "<dd>St Elsewhere portal-venous abdomen CT, 2019-2023</dd>" in page
    assert "<dd>internal use only</dd>" in page
    # The per-class table follows the declared class order, not the file's.
    header = re.search(r'<table id="classes".*?</thead>', page, re.S)
    assert header is not None
    assert re.findall(r"<button[^>]*>(\w+)</button>", header.group(0))[2:] == [
        "liver",
        "spleen",
        "pancreas",
    ]
    assert (root / "site" / "models" / "voco_b.html").is_file()


def test_a_clash_with_a_built_in_id_is_refused(
    root: pathlib.Path, segmentation_session: pathlib.Path
) -> None:
    declared = re.sub(f"id: {PRIVATE} .*", "id: btcv", documented_tasks_file(), count=1)
    path = _declare(root, declared)
    before = snapshot(root)
    with pytest.raises(LeaderboardError) as raised:
        submit_run(segmentation_session, root)
    line = declared.splitlines().index("  - id: btcv") + 1
    assert f"{path}:{line}: $.tasks[0].id: 'btcv' is a built-in task" in str(raised.value)
    assert snapshot(root) == before
    problems = validate(root)
    assert len(problems) == 1 and f"{path}:{line}:" in problems[0]
    assert cli.main(["leaderboard", "build", "--root", str(root)]) == 1
    assert snapshot(root) == before


@pytest.mark.parametrize(
    ("change", "location", "message"),
    [
        (("type: segmentation", "type: segmentaton"), "type: segmentaton", "$.tasks[0].type: "),
        (("metric: dice", "metric: balanced_accuracy"), "metric: balanced", "but segmentation"),
        (
            ("classes: [background, liver,", "classes: [liver, background,"),
            "classes: [liver",
            "label 0 is 'background', not 'liver'",
        ),
        (
            ("image_sources: [stelsewhere_ct]", "images: [ct]"),
            "images: [ct]",
            "'images' was unexpected",
        ),
        (
            ("  - id: stelsewhere_abdomen_ct_organs", "  - id: Organs"),
            "id: Organs",
            "$.tasks[1].id",
        ),
        (
            ("citation: Organ patches", "url2: Organ patches"),
            "id: stelsewhere_abdomen_ct_org",
            "'citation' is a required property",
        ),
        (
            ("name: St Elsewhere organ patches", "name: [unclosed"),
            "type: classification",
            "malformed YAML",
        ),
    ],
)
def test_a_schema_error_names_the_file_and_the_line(
    root: pathlib.Path,
    segmentation_session: pathlib.Path,
    change: tuple[str, str],
    location: str,
    message: str,
) -> None:
    text = documented_tasks_file()
    assert change[0] in text
    text = text.replace(change[0], change[1], 1)
    path = _declare(root, text)
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if location in row)
    with pytest.raises(LeaderboardError) as raised:
        Registry.for_root(root)
    assert f"{path}:{line}: " in str(raised.value) and message in str(raised.value)
    with pytest.raises(LeaderboardError, match=re.escape(f"{path}:{line}: ")):
        submit_run(segmentation_session, root)
    assert not (root / "submissions").exists()


def test_two_roots_in_one_process_do_not_leak_tasks(
    tmp_path: pathlib.Path, segmentation_session: pathlib.Path
) -> None:
    private, public = tmp_path / "private", tmp_path / "public"
    _declare(private, documented_tasks_file())
    session = _private_session(tmp_path, "coralbay", 0.8)
    submit_run(session, private)
    submit_run(segmentation_session, public)
    # The public root knows no private task: the run's folder names no task there.
    with pytest.raises(LeaderboardError, match=f"output folder '{PRIVATE}' is no task id"):
        submit_run(session, public)
    with pytest.raises(LeaderboardError, match=f"unknown task '{PRIVATE}'"):
        submit_run(session, public, task_id=PRIVATE)
    assert PRIVATE not in Registry.for_root(public) and PRIVATE not in builtin_registry()
    # A second private root declaring the same id under another name keeps its own name.
    other = tmp_path / "other"
    _declare(other, documented_tasks_file().replace("St Elsewhere abdomen CT", "Other CT"))
    submit_run(session, other)
    for board in (private, public, other):
        build(board)
    assert "St Elsewhere abdomen CT" in (private / "README.md").read_text()
    assert "Other CT" in (other / "README.md").read_text()
    assert "St Elsewhere abdomen CT" not in (other / "README.md").read_text()
    public_readme = (public / "README.md").read_text()
    assert PRIVATE not in public_readme and "Other CT" not in public_readme
    assert validate(private) == validate(public) == validate(other) == []


def test_a_task_removed_from_tasks_yaml_leaves_its_entries_reported(
    root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    path = _declare(root, documented_tasks_file())
    submit_run(_private_session(tmp_path, "coralbay", 0.8), root)
    path.unlink()
    problems = validate(root)
    assert f"coralbay/{PRIVATE}.json: invalid submission" in problems[0]
    assert f"unknown task '{PRIVATE}'" in problems[0]
    with pytest.raises(LeaderboardError, match=f"unknown task '{PRIVATE}'"):
        build(root)


def test_the_dumped_file_reads_back() -> None:
    entries = [
        {
            "id": "my_task",
            "name": "My task",
            "type": "segmentation",
            "classes": ["background", "liver"],
            "image_sources": ["mine"],
            "citation": "mine",
        }
    ]
    text = task_file.dump(entries)
    assert text.startswith("schema_version: 1\ntasks:\n")
    with pytest.raises(LeaderboardError, match=r"\$\.tasks\[0\]: 'citation' is a required"):
        task_file.dump([{key: value for key, value in entries[0].items() if key != "citation"}])
