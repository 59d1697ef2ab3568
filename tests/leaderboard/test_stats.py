import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from eva_coralbay.leaderboard import stats
from eva_coralbay.leaderboard.metrics import METRICS
from tests.leaderboard.builders import per_case_dice

DICE, BALANCED_ACCURACY = METRICS["dice"], METRICS["balanced_accuracy"]


def test_statistic_of_classification_rows_is_balanced_accuracy() -> None:
    generator = np.random.default_rng(0)
    truth = generator.integers(0, 4, 200)
    predicted = np.where(generator.random(200) < 0.7, truth, generator.integers(0, 4, 200))
    frame = pd.DataFrame(
        {"case_id": range(200), "class": truth.astype(str), "score": (truth == predicted) * 1.0}
    )
    scores = frame.pivot_table(index="case_id", columns="class", values="score", dropna=False)
    estimate = BALANCED_ACCURACY.estimate(scores.to_numpy())
    assert estimate == pytest.approx(balanced_accuracy_score(truth, predicted))
    # A resample that draws each case as often as its position: recalls weighted alike.
    weights = np.arange(200.0)[None]
    expected = balanced_accuracy_score(truth, predicted, sample_weight=weights[0])
    assert BALANCED_ACCURACY.statistic(weights, scores.to_numpy())[0] == pytest.approx(expected)


def test_dice_statistic_is_the_mean_over_cases_of_each_case_mean_over_classes() -> None:
    # Case a has class 2 absent from prediction and reference (NaN): eva's DiceScore counts
    # case a as 1.0, so the published Dice is (1.0 + 0.45) / 2 = 0.725; the mean over
    # classes of the class means over cases would be (0.75 + 0.4) / 2 = 0.575.
    scores = np.array([[1.0, np.nan], [0.5, 0.4]])
    assert DICE.estimate(scores) == pytest.approx(0.725)
    assert BALANCED_ACCURACY.estimate(scores) == pytest.approx(0.575)
    # A resample that draws case a twice and case b once.
    assert DICE.statistic(np.array([[2.0, 1.0]]), scores)[0] == pytest.approx((2 * 1.0 + 0.45) / 3)


def test_dice_statistic_leaves_out_cases_without_any_defined_class() -> None:
    # torchmetrics' nanmean over cases skips a case whose every class is NaN.
    scores = np.array([[np.nan, np.nan], [0.5, 0.4], [0.8, np.nan]])
    assert DICE.estimate(scores) == pytest.approx((0.45 + 0.8) / 2)
    # Drawing only the empty case leaves the statistic undefined, as torchmetrics has it.
    statistic = DICE.statistic(np.array([[3.0, 0.0, 0.0], [1.0, 1.0, 1.0]]), scores)
    assert np.isnan(statistic[0]) and statistic[1] == pytest.approx(0.625)
    assert np.isnan(BALANCED_ACCURACY.statistic(np.array([[3.0, 0.0, 0.0]]), scores)[0])


def test_p_value_ignores_undefined_resamples() -> None:
    assert stats._p_value(np.array([np.nan, 0.1, 0.2, 0.3])) == pytest.approx(2 / 4)
    assert np.isnan(stats._p_value(np.array([np.nan, np.nan])))


def _scores(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.pivot_table(index="case_id", columns="class", values="score")


def test_paired_bootstrap_p_values() -> None:
    best = _scores(per_case_dice(0.85, seed=1))
    assert stats.paired_bootstrap_p_value(best, best, DICE, seed=0) == 1.0
    worse = _scores(per_case_dice(0.80, seed=2))
    close = _scores(per_case_dice(0.849, seed=3))
    assert stats.paired_bootstrap_p_value(best, worse, DICE, seed=0) < 0.01
    assert stats.paired_bootstrap_p_value(best, close, DICE, seed=0) > 0.05
    assert stats.paired_bootstrap_p_value(
        best, close, DICE, seed=5
    ) == stats.paired_bootstrap_p_value(best, close, DICE, seed=5)
    disjoint = close.set_axis([f"other_{case}" for case in close.index], axis=0)
    assert np.isnan(stats.paired_bootstrap_p_value(best, disjoint, DICE, seed=0))


def test_the_tie_test_resamples_the_published_dice_not_the_class_first_mean() -> None:
    # Half the cases lack class y: absent from A's prediction and the reference (NaN), while B
    # predicts it there with Dice m, the mean of y over the other cases. Their class-first
    # means are equal, but A's published Dice counts those cases by x alone (1.0) and B's as
    # (1 + m) / 2: A is clearly better, and only the published statistic's test says so.
    half = 30
    other = np.random.default_rng(0).uniform(0.6, 0.7, (half, 2))
    m = other[:, 1].mean()
    model_a = np.vstack([np.tile([1.0, np.nan], (half, 1)), other])
    model_b = np.vstack([np.tile([1.0, m], (half, 1)), other])
    frame_a, frame_b = (pd.DataFrame(scores, columns=["x", "y"]) for scores in (model_a, model_b))
    assert BALANCED_ACCURACY.estimate(model_a) == pytest.approx(BALANCED_ACCURACY.estimate(model_b))
    assert DICE.estimate(model_a) > DICE.estimate(model_b) + 0.05
    assert stats.paired_bootstrap_p_value(frame_a, frame_b, DICE, seed=0) < 0.01
    assert stats.paired_bootstrap_p_value(frame_a, frame_b, BALANCED_ACCURACY, seed=0) > 0.05


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
    result = stats.ties_with_best("btcv", DICE, "best", scores).set_index("model_id")
    assert result.at["close", "tied"] and not result.at["worse", "tied"]


def test_bootstrap_intervals_cover_the_statistic_and_ignore_other_models() -> None:
    scores = {
        "a": per_case_dice(0.8, seed=1).pivot(index="case_id", columns="class", values="score"),
        "b": per_case_dice(0.7, seed=2).pivot(index="case_id", columns="class", values="score"),
    }
    found = stats.bootstrap_intervals("btcv", DICE, scores).set_index("model_id")
    for model, table in scores.items():
        statistic = table.mean(axis=0).mean()
        low, high = found.at[model, "low"], found.at[model, "high"]
        assert low < statistic < high
        assert high - low < 0.05  # 40 cases, a spread of a few hundredths
    alone = stats.bootstrap_intervals("btcv", DICE, {"a": scores["a"]}).set_index("model_id")
    assert alone.at["a", "low"] == found.at["a", "low"]  # the same resamples: seeded by the cases
    assert stats.bootstrap_intervals("btcv", DICE, scores).equals(found.reset_index())
    fewer = stats.bootstrap_intervals("btcv", DICE, {"a": scores["a"].iloc[:10]}).set_index(
        "model_id"
    )
    assert (
        fewer.at["a", "high"] - fewer.at["a", "low"] > found.at["a", "high"] - found.at["a", "low"]
    )
