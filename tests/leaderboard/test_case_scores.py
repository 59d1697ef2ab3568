import pathlib

import numpy as np
import pandas as pd
import pytest

from eva_coralbay.leaderboard import LeaderboardError, case_scores, get_metric


def test_load_scores_matches_a_pandas_pivot(tmp_path: pathlib.Path) -> None:
    generator = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "case_id": generator.integers(0, 12, 300),
            "class": generator.choice(["liver", "spleen", "kidney"], 300),
            "score": np.where(generator.random(300) < 0.1, np.nan, generator.random(300)),
            "run": generator.integers(0, 3, 300),
            "stage": generator.choice(["val", "test"], 300),
        }
    )
    path = tmp_path / "scores.parquet"
    frame.to_parquet(path)
    expected = (
        frame[frame["stage"] == "test"]
        .astype({"case_id": str, "class": str})
        .pivot_table(index="case_id", columns="class", values="score", aggfunc="mean")
    )
    got = case_scores.load_scores(path, "test")
    pd.testing.assert_frame_equal(
        got, expected, check_names=False, check_index_type=False, check_column_type=False
    )


def test_check_file_accepts_integer_ids_and_null_scores(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "scores.parquet"
    pd.DataFrame({"case_id": [1, 2], "class": [0, 1], "score": [1.0, None]}).to_parquet(path)
    case_scores.check_file(path, get_metric("balanced_accuracy"))
    pd.DataFrame({"case_id": [1, None], "class": [0, 1], "score": [1, 0]}).to_parquet(path)
    with pytest.raises(LeaderboardError, match="null case_id"):
        case_scores.check_file(path, get_metric("balanced_accuracy"))
