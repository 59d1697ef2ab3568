import json
import pathlib
import shutil

import pytest

from eva_coralbay import cli
from eva_coralbay.leaderboard import build, load, validate
from eva_coralbay.leaderboard.store import Store
from eva_coralbay.leaderboard.submit import ModelDetails
from tests.leaderboard.builders import per_case_dice, submit_scores


@pytest.fixture
def board(root: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    details = ModelDetails(display_name="Alpha", pretraining_datasets=["lits"])
    submit_scores(
        root, tmp_path, "alpha", "btcv", [0.8], per_case=per_case_dice(0.8, 1), details=details
    )
    submit_scores(root, tmp_path, "alpha", "word", [0.7])
    submit_scores(root, tmp_path, "beta", "btcv", [0.75, 0.76])
    build.build(root)
    return root


def test_valid_folder(board: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert validate.validate(board) == []
    assert cli.main(["leaderboard", "validate", "--root", str(board)]) == 0
    assert "valid" in capsys.readouterr().out


def test_all_problems_are_listed_at_once(
    board: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    submissions = board / "submissions"
    (submissions / "beta" / "word.json").write_text("{broken")
    shutil.copy(submissions / "beta" / "btcv.json", submissions / "beta" / "flare22.json")
    record = json.loads((submissions / "alpha" / "word.json").read_text())
    (submissions / "alpha" / "word.json").write_text(json.dumps(record | {"display_name": "Other"}))
    nan_record = json.loads((submissions / "beta" / "btcv.json").read_text())
    (submissions / "beta" / "btcv.json").write_text(json.dumps(nan_record | {"mean": float("nan")}))
    per_case_file = next((submissions / "alpha" / "per_case").iterdir())
    per_case_file.write_bytes(per_case_file.read_bytes() + b"tampered")
    (submissions / "alpha" / "per_case" / f"{'0' * 64}.parquet").write_bytes(b"orphan")
    (submissions / "alpha" / "notes.txt").write_text("stray")
    (submissions / "Bad Model").mkdir()

    problems = validate.validate(board)
    expected = [
        "beta/word.json: malformed JSON",
        "beta/flare22.json: holds model 'beta' on task 'btcv'",
        "beta/btcv.json: malformed JSON: NaN is not a valid JSON number",
        "alpha: entries disagree on the model's details",
        "sha256 differs from per_case_sha256",
        "per-case file referenced by no entry",
        "notes.txt: unexpected file",
        "Bad Model: folder name is not a valid model id",
    ]
    for fragment in expected:
        assert sum(fragment in problem for problem in problems) == 1, (fragment, problems)
    assert len(problems) == len(expected)

    assert cli.main(["leaderboard", "validate", "--root", str(board)]) == 1
    error = capsys.readouterr().err
    assert f"{len(expected)} problem(s)" in error


def test_stale_readme_is_reported(board: pathlib.Path, tmp_path: pathlib.Path) -> None:
    submit_scores(board, tmp_path, "gamma", "btcv", [0.9])
    assert validate.validate(board) == [
        f"{board / 'README.md'}: out of date; run `coralbay leaderboard build`"
    ]
    build.build(board)
    assert validate.validate(board) == []


def test_missing_folder(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nothing" / "submissions"
    assert validate.validate(tmp_path / "nothing") == [
        f"{missing}: missing (no leaderboard here; submit to create one)"
    ]


def test_big_integers_and_lone_surrogates(board: pathlib.Path) -> None:
    submissions = board / "submissions"
    big = json.loads((submissions / "beta" / "btcv.json").read_text())
    big["parameters"] = 2**70  # beyond 64 bits: orjson would read a float
    (submissions / "beta" / "btcv.json").write_text(json.dumps(big))
    surrogate = big | {"model_id": "gamma", "display_name": "Gamma \ud800", "parameters": 5}
    (submissions / "gamma").mkdir()
    (submissions / "gamma" / "btcv.json").write_text(json.dumps(surrogate))

    loaded = load.load(Store(board))

    beta = next(entry for entry in loaded.entries if entry.model_id == "beta")
    assert beta.to_json() == big
    assert type(beta.parameters) is int
    # A lone surrogate cannot be written to the UTF-8 README: the file is refused, by name.
    assert [problem.split(": ")[:2] for problem in loaded.problems] == [
        [str(submissions / "gamma" / "btcv.json"), "malformed JSON"]
    ]
    assert "surrogate" in loaded.problems[0]
