import json
import pathlib
import subprocess
import sys

from tests.leaderboard import eva_output
from tests.leaderboard.builders import per_case_dice

HEAVY = ("torch", "eva", "lightning", "monai", "eva_coralbay.models", "eva_coralbay.data")

_PROBE = """
import json, sys
from eva_coralbay import cli
status = cli.main(sys.argv[1:])
watched = {watched}
print(json.dumps({{"status": status, "loaded": sorted(m for m in watched if m in sys.modules)}}))
"""


def _run(*args: str, watched: tuple[str, ...]) -> dict:
    code = _PROBE.format(watched=repr(watched))
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_is_light() -> None:
    code = (
        "import sys, eva_coralbay.leaderboard\n"
        f"print(sorted(m for m in {(*HEAVY, 'pandas', 'matplotlib')!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_submit_and_build_run_without_torch_or_eva(tmp_path: pathlib.Path) -> None:
    session = eva_output.write_session(
        tmp_path / "logs",
        eva_output.SEGMENTATION_TEMPLATE,
        eva_output.segmentation_metrics([0.8, 0.82]),
    )
    root = str(tmp_path / "leaderboard")
    # A submit without per-case scores needs neither pandas nor matplotlib either.
    submitted = _run(
        "leaderboard", "submit", str(session), "--root", root,
        watched=(*HEAVY, "pandas", "matplotlib"),
    )  # fmt: skip
    assert submitted == {"status": 0, "loaded": []}
    built = _run("leaderboard", "build", "--root", root, watched=HEAVY)
    assert built == {"status": 0, "loaded": []}
    assert (tmp_path / "leaderboard" / "README.md").is_file()


def test_submit_with_per_case_scores_reads_them_without_pandas(tmp_path: pathlib.Path) -> None:
    session = eva_output.write_session(
        tmp_path / "logs",
        eva_output.SEGMENTATION_TEMPLATE,
        eva_output.segmentation_metrics([0.8, 0.82]),
    )
    per_case_dice(0.8, 1).to_parquet(session / "per_case_scores.parquet")
    root = tmp_path / "leaderboard"
    # pyarrow reads and checks the file; pandas and pyarrow.compute would double the time.
    watched = (*HEAVY, "pandas", "matplotlib", "pyarrow.compute")
    submitted = _run("leaderboard", "submit", str(session), "--root", str(root), watched=watched)
    assert submitted == {"status": 0, "loaded": []}
    assert len(list((root / "submissions").glob("*/per_case/*.parquet"))) == 1
