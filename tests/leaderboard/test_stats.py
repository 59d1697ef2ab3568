import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from eva_coralbay.leaderboard import stats
from tests.leaderboard.builders import per_case_dice


def test_statistic_of_classification_rows_is_balanced_accuracy() -> None:
    generator = np.random.default_rng(0)
    truth = generator.integers(0, 4, 200)
    predicted = np.where(generator.random(200) < 0.7, truth, generator.integers(0, 4, 200))
    frame = pd.DataFrame(
        {"case_id": range(200), "class": truth.astype(str), "score": (truth == predicted) * 1.0}
    )
    scores = frame.pivot_table(index="case_id", columns="class", values="score", dropna=False)
    unit = np.ones((1, len(scores)))
    statistic = stats._statistic(unit, scores.to_numpy())
    assert statistic[0] == pytest.approx(balanced_accuracy_score(truth, predicted))


def test_statistic_of_segmentation_rows_is_macro_dice() -> None:
    scores = np.array([[0.9, np.nan], [0.7, 0.5], [0.8, 0.6]])
    assert stats._statistic(np.ones((1, 3)), scores)[0] == pytest.approx((0.8 + 0.55) / 2)
    # A resample that draws case 0 twice and case 2 never.
    assert stats._statistic(np.array([[2, 1, 0]]), scores)[0] == pytest.approx(
        ((0.9 * 2 + 0.7) / 3 + 0.5) / 2
    )


def _scores(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.pivot_table(index="case_id", columns="class", values="score")


def test_paired_bootstrap_p_values() -> None:
    best = _scores(per_case_dice(0.85, seed=1))
    assert stats.paired_bootstrap_p_value(best, best, seed=0) == 1.0
    worse = _scores(per_case_dice(0.80, seed=2))
    close = _scores(per_case_dice(0.849, seed=3))
    assert stats.paired_bootstrap_p_value(best, worse, seed=0) < 0.01
    assert stats.paired_bootstrap_p_value(best, close, seed=0) > 0.05
    assert stats.paired_bootstrap_p_value(best, close, seed=5) == stats.paired_bootstrap_p_value(
        best, close, seed=5
    )
    disjoint = close.set_axis([f"other_{case}" for case in close.index], axis=0)
    assert np.isnan(stats.paired_bootstrap_p_value(best, disjoint, seed=0))


def test_holm_matches_the_textbook_example() -> None:
    adjusted = stats.holm(np.array([0.01, 0.04, 0.03, 0.005, np.nan]))
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)=0.06
    np.testing.assert_allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(adjusted[4])


def test_ties_with_best() -> None:
    scores = {
        "best": _scores(per_case_dice(0.85, seed=1)),
        "close": _scores(per_case_dice(0.849, seed=2)),
        "worse": _scores(per_case_dice(0.75, seed=3)),
    }
    result = stats.ties_with_best("btcv", "best", scores).set_index("model_id")
    assert result.at["close", "tied"] and not result.at["worse", "tied"]


def test_bootstrap_intervals_cover_the_statistic_and_ignore_other_models() -> None:
    scores = {
        "a": per_case_dice(0.8, seed=1).pivot(index="case_id", columns="class", values="score"),
        "b": per_case_dice(0.7, seed=2).pivot(index="case_id", columns="class", values="score"),
    }
    found = stats.bootstrap_intervals("btcv", scores).set_index("model_id")
    for model, table in scores.items():
        statistic = table.mean(axis=0).mean()
        low, high = found.at[model, "low"], found.at[model, "high"]
        assert low < statistic < high
        assert high - low < 0.05  # 40 cases, a spread of a few hundredths
    alone = stats.bootstrap_intervals("btcv", {"a": scores["a"]}).set_index("model_id")
    assert alone.at["a", "low"] == found.at["a", "low"]  # the same resamples: seeded by the cases
    assert stats.bootstrap_intervals("btcv", scores).equals(found.reset_index())
    fewer = stats.bootstrap_intervals("btcv", {"a": scores["a"].iloc[:10]}).set_index("model_id")
    assert (
        fewer.at["a", "high"] - fewer.at["a", "low"] > found.at["a", "high"] - found.at["a", "low"]
    )
