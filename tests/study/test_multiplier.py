import pytest

from tellkit.metrics import compute
from tellkit.study.multiplier import multipliers, tokens_for
from tellkit.study.sweep import curves

RIGHT, WRONG = '{"a": 1}', "x"


def _cell(method, ratio, right, n=10, task_tokens=100, seed=0, last=False):
    """`right` of `n` items right: the first ones, or the `last` ones."""
    preds = [RIGHT] * right + [WRONG] * (n - right)
    preds = preds[::-1] if last else preds
    return {"method": method, "task_tokens": task_tokens, "ratio": ratio, "seed": seed,
            "metrics": compute(["json"], preds, [RIGHT] * n)}


def _grid(n=10, tell=4, sft=(2, 6), tell_last=False):
    return [_cell("sft", 0.0, sft[0], n, task_tokens=100), _cell("sft", 0.0, sft[1], n, task_tokens=1000),
            _cell("tell", 0.0, sft[0], n), _cell("tell", 3.0, tell, n, last=tell_last)]


def test_multiplier_reads_the_curves():
    results = _grid()
    (m,) = multipliers(curves(results, "json/strict"))
    assert m["tell_ratio"] == 3.0 and m["tell_score"] == pytest.approx(0.4)
    assert m["multiplier"] == pytest.approx(10 ** 0.5, rel=1e-6)  # halfway from 0.2 to 0.6, log-linear
    assert m["interval_from"] == "TELL's interval" and not m["joint"] and len(m["interval"]) == 2


def test_multiplier_interpolation():
    sft = [(1000, 0.2), (10000, 0.6)]
    assert abs(tokens_for(sft, 0.6) - 10000) < 1e-6
    assert 1000 < tokens_for(sft, 0.4) < 10000
    assert abs(tokens_for(sft, 0.4) - 10 ** 3.5) < 1  # log-linear midpoint
    assert tokens_for(sft, 0.9) is None


def test_joint_interval_pairs_tell_and_sft_by_item():
    # 80 items: tell 0.4, SFT 0.2 -> 0.7, all scored on the same items. Resampling SFT's curve on the items
    # TELL is resampled on: where both get the same items right, the ratio moves little (narrower than TELL's
    # interval on SFT's exact curve); where TELL gets the others right, the two move apart (wider).
    widths = {}
    for tell_last in (False, True):
        results = _grid(n=80, tell=32, sft=(16, 56), tell_last=tell_last)
        c = curves(results, "json/strict")
        (alone,) = multipliers(c)
        (joint,) = multipliers(c, results, "json/strict")
        assert joint["multiplier"] == alone["multiplier"] and joint["interval_from"] == "items x seeds, TELL and SFT" and joint["joint"]
        low, high = joint["interval"]
        assert low < joint["multiplier"] < high
        widths[tell_last] = (high - low, alone["interval"][1] - alone["interval"][0])
    assert widths[False][0] < widths[False][1] and widths[True][0] > widths[True][1]


def test_joint_interval_is_open_where_sft_may_never_reach_tell():
    # tell 0.55 against SFT's 0.6 at its largest scale, right on other items: in many draws SFT stays below
    results = _grid(n=20, tell=11, sft=(4, 12), tell_last=True)
    (m,) = multipliers(curves(results, "json/strict"), results, "json/strict")
    assert m["multiplier"] is not None and m["interval"][1] is None
    # without per-item rows (older results) the interval comes from TELL's interval alone
    for r in results:
        del r["metrics"]["json"]["items"]
    (old,) = multipliers(curves(results, "json/strict"), results, "json/strict")
    assert old["interval_from"] == "TELL's interval"
