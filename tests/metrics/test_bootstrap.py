import math

import numpy as np
import pytest

from tellkit.errors import ConfigError
from tellkit.metrics.bootstrap import (
    ITEMS_AND_SEEDS,
    PAIRED_ITEMS_AND_SEEDS,
    STUDENT_T,
    WELCH_T,
    WILSON,
    bootstrap_ci,
    bootstrap_corpus_ci,
    crossed_bootstrap_ci,
    difference_ci,
    mean_ci_over_seeds,
    wilson_ci,
)

# Student-t quantiles t_{0.975, df} from standard tables.
T975 = {1: 12.706205, 2: 4.302653, 4: 2.776445}


def test_bootstrap_ci_empty_and_single():
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    point, low, high = bootstrap_ci([0.7])
    assert point == 0.7 and math.isnan(low) and math.isnan(high)


def test_bootstrap_ci_two_values_hand_computed():
    # Resample means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4:
    # the 2.5%/97.5% quantiles are 0 and 1, the 30%/70% quantiles both 0.5.
    assert bootstrap_ci([0.0, 1.0]) == (0.5, 0.0, 1.0)
    assert bootstrap_ci([0.0, 1.0], alpha=0.6) == (0.5, 0.5, 0.5)


def test_bootstrap_ci_constant_values_have_zero_width():
    assert bootstrap_ci([3.0, 3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)


def test_bootstrap_ci_custom_statistic_and_seed_determinism():
    values = [1.0, 2.0, 3.0, 4.0, 100.0]
    point, low, high = bootstrap_ci(values, statistic=np.median, seed=3)
    assert point == 3.0
    assert low <= point <= high <= 100.0
    assert bootstrap_ci(values, statistic=np.median, seed=3) == (point, low, high)


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"alpha": 1.0}, {"n_resamples": 0}])
def test_bootstrap_ci_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        bootstrap_ci([1.0, 2.0], **kwargs)


def test_bootstrap_corpus_ci_uses_corpus_statistic_on_indices():
    # A ratio of sums (like BLEU/chrF statistics), not a mean of item ratios:
    # full corpus 2/4 = 0.5 (the item-ratio mean would be 2/3).
    num = np.array([1.0, 1.0])
    den = np.array([1.0, 3.0])
    seen_lengths = set()

    def ratio(idx: np.ndarray) -> float:
        seen_lengths.add(len(idx))
        return num[idx].sum() / den[idx].sum()

    # Resamples: {0,0} -> 1, {1,1} -> 1/3, mixed -> 0.5.
    point, low, high = bootstrap_corpus_ci(2, ratio)
    assert point == 0.5
    assert low == pytest.approx(1 / 3) and high == 1.0
    assert seen_lengths == {2}


def test_bootstrap_corpus_ci_empty_and_single():
    assert all(math.isnan(x) for x in bootstrap_corpus_ci(0, lambda idx: 1.0))
    point, low, high = bootstrap_corpus_ci(1, lambda idx: 42.0)
    assert point == 42.0 and math.isnan(low) and math.isnan(high)


def test_mean_ci_over_seeds_student_t():
    # mean 2, sd 1, se 1/sqrt(3), df 2.
    out = mean_ci_over_seeds([1.0, 2.0, 3.0])
    half = T975[2] / math.sqrt(3)
    assert out["mean"] == 2.0 and out["n"] == 3
    assert out["ci_low"] == pytest.approx(2.0 - half, abs=1e-5)
    assert out["ci_high"] == pytest.approx(2.0 + half, abs=1e-5)


def test_mean_ci_over_seeds_one_and_zero_seeds():
    one = mean_ci_over_seeds([0.4])
    assert one["mean"] == 0.4 and math.isnan(one["ci_low"]) and math.isnan(one["ci_high"])
    assert math.isnan(mean_ci_over_seeds([])["mean"])


def test_difference_ci_a_better_hand_computed():
    # diff 9, se sqrt(1/3 + 1/3), Welch df = (2/3)^2 / (2 * (1/3)^2 / 2) = 4.
    out = difference_ci([10.0, 11.0, 12.0], [1.0, 2.0, 3.0])
    half = T975[4] * math.sqrt(2 / 3)
    assert out["mean_diff"] == 9.0
    assert out["ci_low"] == pytest.approx(9.0 - half, abs=1e-5)
    assert out["ci_high"] == pytest.approx(9.0 + half, abs=1e-5)
    assert out["verdict"] == "A better"


def test_difference_ci_b_better_and_lower_is_better():
    assert difference_ci([1.0, 2.0, 3.0], [10.0, 11.0, 12.0])["verdict"] == "B better"
    # For TER-like metrics the higher scorer loses.
    assert difference_ci([10.0, 11.0, 12.0], [1.0, 2.0, 3.0], higher_is_better=False)["verdict"] == "B better"


def test_difference_ci_no_clear_difference_when_ci_contains_zero():
    out = difference_ci([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert out["mean_diff"] == -0.5
    assert out["ci_low"] < 0.0 < out["ci_high"]
    assert out["verdict"] == "no clear difference"


def test_difference_ci_welch_df_follows_the_noisy_side():
    # diff 2, se sqrt(2/2) = 1; b has zero variance, so
    # df = va^2 / (va^2 / (na - 1)) = na - 1 = 1 (a pooled test would use 4).
    out = difference_ci([1.0, 3.0], [0.0, 0.0, 0.0, 0.0])
    assert out["mean_diff"] == 2.0
    assert out["ci_low"] == pytest.approx(2.0 - T975[1], abs=1e-5)
    assert out["ci_high"] == pytest.approx(2.0 + T975[1], abs=1e-5)
    assert out["verdict"] == "no clear difference"


def test_difference_ci_degenerate_inputs():
    single = difference_ci([5.0], [1.0, 2.0])
    assert single["mean_diff"] == 3.5 and math.isnan(single["ci_low"])
    assert single["verdict"] == "no clear difference"
    exact = difference_ci([2.0, 2.0], [1.0, 1.0])
    assert (exact["ci_low"], exact["ci_high"], exact["verdict"]) == (1.0, 1.0, "A better")


# ---------------------------------------------------------------- intervals that respect [0, 1]


def test_three_seeds_of_0_0_1_stay_inside_0_1_with_items():
    # The old Student-t band: mean 1/3, half-width 4.30 * 0.577 / sqrt(3) = 1.43 -> [-1.1, 1.8].
    items = [[0.0], [0.0], [1.0]]
    out = mean_ci_over_seeds([0.0, 0.0, 1.0], items=[[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    assert out["interval"] == ITEMS_AND_SEEDS and out["mean"] == pytest.approx(1 / 3)
    assert 0.0 <= out["ci_low"] <= out["mean"] <= out["ci_high"] <= 1.0
    assert out["ci_low"] == 0.0 and out["ci_high"] == 1.0  # resampling 3 seeds can draw all-0 or all-1
    # one item per seed: no spread can be estimated over items, so no interval (not a false one)
    assert math.isnan(mean_ci_over_seeds([0.0, 0.0, 1.0], items=items)["ci_low"])


def test_three_seeds_of_0_0_1_stay_inside_0_1_without_items_via_wilson():
    out = mean_ci_over_seeds([0.0, 0.0, 1.0], bounds=(0.0, 1.0), n_items=1)
    low, high = wilson_ci(1 / 3, 3)
    assert out["interval"] == WILSON and (out["ci_low"], out["ci_high"]) == pytest.approx((low, high))
    assert 0.0 < out["ci_low"] < 1 / 3 < out["ci_high"] < 1.0


def test_wilson_hand_computed_and_bounded_at_the_edges():
    # 5 of 10: 0.2366 .. 0.7634 (Wilson 1927; standard tables)
    assert wilson_ci(0.5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    low, high = wilson_ci(0.0, 20)
    assert low == 0.0 and 0.0 < high < 0.2
    low, high = wilson_ci(1.0, 20)
    assert 0.8 < low < 1.0 and high == 1.0


def test_wilson_rescales_a_0_100_score():
    out = mean_ci_over_seeds([98.0, 100.0], bounds=(0.0, 100.0), n_items=50)
    assert 90 < out["ci_low"] < 99.0 < out["ci_high"] <= 100.0


def test_unbounded_score_without_items_keeps_student_t():
    out = mean_ci_over_seeds([1.0, 2.0, 3.0], bounds=(0.0, math.inf), n_items=100)
    assert out["interval"] == STUDENT_T and out["ci_low"] < 1.0  # a loss: t is the right tool


def test_crossed_bootstrap_one_seed_is_the_item_bootstrap():
    # Resample means of [0, 1] are 0, 0.5, 1: the 2.5%/97.5% quantiles are 0 and 1.
    assert crossed_bootstrap_ci([[0.0, 1.0]]) == (0.5, 0.0, 1.0)
    assert crossed_bootstrap_ci([[3.0, 3.0, 3.0]]) == (3.0, 3.0, 3.0)


def test_crossed_bootstrap_widens_with_seed_spread():
    same = crossed_bootstrap_ci([[0, 1] * 10] * 3)
    spread = crossed_bootstrap_ci([[0] * 20, [0, 1] * 10, [1] * 20])
    assert same[0] == spread[0] == 0.5
    assert spread[2] - spread[1] > 1.5 * (same[2] - same[1])


def test_crossed_bootstrap_statistic_and_shape_check():
    # perplexity-like statistic: exp(mean) of each seed's rows, averaged over seeds
    point, low, high = crossed_bootstrap_ci([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], statistic=lambda r: math.exp(r.mean()))
    assert point == pytest.approx(math.exp(2.0)) and math.exp(1.0) <= low < point < high <= math.exp(3.0)
    with pytest.raises(ValueError, match="same test items"):
        crossed_bootstrap_ci([[1.0, 2.0], [1.0]])


def test_paired_difference_sees_a_shift_the_item_noise_hides():
    rng = np.random.default_rng(0)
    b = rng.integers(0, 2, size=40).astype(float)  # hard and easy items, ~half right
    a = b.copy()
    a[np.flatnonzero(b == 0)[:8]] = 1.0  # A also gets 8 of B's misses right, and nothing worse
    out = difference_ci([a.mean()], [b.mean()], items_a=[a], items_b=[b])
    assert out["interval"] == PAIRED_ITEMS_AND_SEEDS and out["mean_diff"] == pytest.approx(0.2)
    assert 0.0 < out["ci_low"] <= 0.2 <= out["ci_high"] <= 1.0 and out["verdict"] == "A better"
    # Without items, one seed each: nothing can be estimated.
    assert difference_ci([a.mean()], [b.mean()])["verdict"] == "no clear difference"


def test_paired_difference_lower_is_better_and_welch_fallback_named():
    loss_a, loss_b = [[1.0, 2.0, 1.5, 1.2]], [[2.0, 3.0, 2.5, 2.2]]
    out = difference_ci([1.425], [2.425], higher_is_better=False, items_a=loss_a, items_b=loss_b)
    assert out["mean_diff"] == pytest.approx(-1.0) and out["verdict"] == "A better"
    assert difference_ci([1.0, 2.0], [3.0, 4.0])["interval"] == WELCH_T
