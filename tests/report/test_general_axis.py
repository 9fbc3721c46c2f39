"""The sweep report's opening lines on the general axis, including a partial sweep whose base (the reference,
planned last) has not been evaluated yet."""
import math

from tellkit.report.general_axis import sweep_lines

KEYS = ["general_ood/tellkit_wordnet/acc", "general_ood/tellkit_pydoc/bits_per_byte"]


def _point(method, ratio, score, means, changes=None, t=10000):
    return {"task_tokens": t, "method": method, "ratio": ratio, "seeds": 1, "score": score,
            "general": means[0], "means": dict(zip(KEYS, means)), "within": None,
            "changes": changes or {k: None for k in KEYS}}


def _general(points):
    return {"key": KEYS[0], "keys": KEYS, "budget": None, "higher_is_better": True, "points": points,
            "directions": {KEYS[0]: True, KEYS[1]: False}}


def test_partial_sweep_shows_the_cells_own_general_scores_until_base_lands():
    lines = sweep_lines(_general([_point("tell", 0, 0.75, [0.56, 1.12]), _point("tell", 10, 0.83, [0.572, 1.113])]),
                        "json/field_exact")
    assert lines[2] == ("- 10000 task tokens, **tell** (ratio 10): json/field_exact 0.830; general: "
                        "tellkit_wordnet/acc 0.572, tellkit_pydoc/bits_per_byte 1.113 "
                        "(no change from base yet: base is not evaluated)")


def test_with_base_the_change_from_base_is_given():
    worse = {"mean_diff": -0.02, "ci_low": -0.03, "ci_high": -0.01, "verdict": "worse"}
    ref = {"mean_diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "verdict": "reference"}
    lines = sweep_lines(_general([_point("tell", 10, 0.83, [0.55, 1.1], {KEYS[0]: worse, KEYS[1]: None}),
                                  _point("base", 0, 0.0, [0.57, 1.1], {k: ref for k in KEYS})]), "json/field_exact")
    assert "base is not evaluated" not in lines[2]
    assert "-2.0 points [-3.0, -1.0] tellkit_wordnet/acc (worse than base)" in lines[2]


def test_a_cell_without_general_scores_says_not_measured():
    lines = sweep_lines(_general([_point("tell", 10, 0.83, [math.nan, math.nan])]), "json/field_exact")
    assert lines[2].endswith("general: not measured")
