from tellkit.report.sweep_report import _interval, seeds_phrase


def test_seeds_phrase_names_the_seeds_that_ran_not_the_plan():
    rows = [{"method": "tell", "seed": 0}, {"method": "sft", "seed": 0}]
    rows += [{"method": "base", "seed": s} for s in (0, 1, 2)]  # base: one evaluation, a row per planned seed
    assert seeds_phrase(rows, [0, 1, 2]) == "seeds [0] of [0, 1, 2] planned"
    rows += [{"method": "tell", "seed": s} for s in (1, 2)]
    assert seeds_phrase(rows, [0, 1, 2]) == "seeds [0, 1, 2]"


def test_multiplier_interval_says_open_and_where_it_came_from():
    joint = {"multiplier": 3.1, "interval": [2.05, None], "joint": True, "interval_from": "items x seeds, TELL and SFT"}
    assert _interval(joint) == "[2.05, open]"
    old = {"multiplier": 3.1, "interval": [1.96, 4.07], "joint": False, "interval_from": "TELL's interval"}
    assert _interval(old) == "[1.96, 4.07] (TELL's interval)"
