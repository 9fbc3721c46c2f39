"""`compare` hands over the winner: the best method by one score, the cheapest of the methods tied
with it, and that method's run folder linked as `best/` in the compare folder.

The rule:
  1. the score is `compare.score`, else the first headline score (label/accuracy, json/strict, chrF, ...);
  2. the best method has the best mean over seeds;
  3. a method is tied with it when the interval of their difference holds 0 ("no clear difference",
     the rule every verdict of the report uses; paired by test item where per-item scores exist);
  4. of the tied methods, the one with the fewest training tokens wins (base trains on none, so it is
     the cheapest of all; then the higher mean, then the order of compare.methods).

Base can win: when no trained method is clearly better than the untrained model, training bought
nothing measurable, and handing over an adapter would suggest otherwise. Then no `best/` is written.

`best/` is a relative symlink (a copy where the file system has none) to one seed's run folder of
the winning method: the seed with the best score on the test set (the first seed on a tie). That
picks on the test set, so that seed's own score is optimistic; the method's mean over seeds is the
estimate to quote. `tellkit predict OUT/best` and `tellkit export OUT/best` read it like any run.

Only a `best` tellkit made is ever replaced: a relative symlink into the compare folder, or a copy
holding the COPY_MARK file. A folder, file or link of the user's named `best` stops the compare
before any cell trains (check_best), naming it.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from ..config import Config
from ..errors import TellkitError
from ..methods import METHODS
from ..metrics import budget, pooled
from ..metrics.headline import headline_scores

TIED, WORSE, BEST, UNKNOWN = "tied with the best", "clearly worse", "best", "difference not estimable"
OVER = "over the forgetting budget"
COPY_MARK = ".tellkit-best"  # written into a copied best/ (no symlinks here): proves tellkit made the copy


def chosen_score(result: dict, cfg: Config) -> str:
    chosen = cfg.compare.score
    available = {k for m in result["summary"].values() for k in m["scores"]}
    if chosen:
        if chosen not in available:
            raise TellkitError(f"compare.score {chosen!r} is not a score of this comparison; choose one of "
                               f"{sorted(available)} and rerun (finished cells are reused, nothing retrains)")
        return chosen
    headline = headline_scores(result["summary"], k=1) or sorted(available)  # only `general`: by general loss
    if not headline:
        raise TellkitError("the comparison has no scores to pick a winner by; check eval.metrics")
    return headline[0]


def _signed(mean: float, higher_is_better: bool) -> float:
    """Larger is better, NaN last."""
    if mean is None or math.isnan(mean):
        return -math.inf
    return mean if higher_is_better else -mean


def pick(result: dict, score: str, excluded: tuple[str, ...] | list[str] = ()) -> dict:
    """The winner of `result` (compare()'s result) by `score`, with every method's standing; methods in
    `excluded` (over the forgetting budget, metrics/budget.py) stand in the table but cannot win."""
    summary, cells = result["summary"], result["cells"]
    methods = [m for m in result["methods"] if score in summary.get(m, {}).get("scores", {})]
    if not methods:
        raise TellkitError(f"no method has the score {score!r}")
    candidates = [m for m in methods if m not in excluded] or methods
    hib = pooled.higher_is_better(score)
    mean = {m: summary[m]["scores"][score]["mean"] for m in methods}
    cost = {m: 0 if not METHODS[m].trains else int(summary[m]["cost"].get("train_tokens", 0) or 0) for m in methods}
    results = {m: [c["metrics"] for c in cells if c["method"] == m] for m in methods}
    best = max(candidates, key=lambda m: (_signed(mean[m], hib), -cost[m], -methods.index(m)))
    standing = {best: {"relation": BEST, "diff": None}}
    for m in methods:
        if m == best:
            continue
        d = pooled.difference(score, results[best], results[m])
        relation = (OVER if m not in candidates else UNKNOWN if math.isnan(d["ci_low"]) else
                    TIED if d["verdict"] == "no clear difference" else WORSE)
        standing[m] = {"relation": relation, "diff": d}
    tied = [m for m in candidates if standing[m]["relation"] in (BEST, TIED)]
    winner = min(tied, key=lambda m: (cost[m], -_signed(mean[m], hib), methods.index(m)))
    seed, run_dir, seed_value = _best_seed(cells, winner, score, hib)
    rows = [{"method": m, **{k: summary[m]["scores"][score].get(k) for k in ("mean", "ci_low", "ci_high")},
             "train_tokens": cost[m], **standing[m]} for m in methods]
    return {"score": score, "higher_is_better": hib, "method": winner, "best_mean": best, "tied": tied,
            "by_cost": len(tied) > 1, "seed": seed, "run_dir": run_dir, "seed_value": seed_value,
            "interval": summary[winner]["scores"][score].get("interval"), "n_seeds": len(result["seeds"]),
            "rows": rows, "reason": _reason(winner, best, tied, standing, score, cost, len(result["seeds"]))}


def _best_seed(cells: list[dict], method: str, score: str, hib: bool) -> tuple[int | None, str, float]:
    """The seed (and its run folder and score) of `method` with the best `score`; the first on a tie."""
    metric, name = pooled.split(score)
    own = [c for c in cells if c["method"] == method]

    def value(c: dict) -> float:
        return c["metrics"].get(metric, {}).get("scores", {}).get(name, {}).get("value", math.nan)

    chosen = max(own, key=lambda c: (_signed(value(c), hib), -own.index(c)))
    return (chosen.get("seed") if METHODS[method].trains else None), chosen["run_dir"], value(chosen)


def _names(methods: list[str]) -> str:
    return methods[0] if len(methods) == 1 else ", ".join(methods[:-1]) + " and " + methods[-1]


def _reason(winner: str, best: str, tied: list[str], standing: dict, score: str, cost: dict, n_seeds: int) -> str:
    others = [m for m in standing if m != best and standing[m]["relation"] != OVER]
    unknown = [m for m in others if standing[m]["relation"] == UNKNOWN]
    clear = [m for m in others if standing[m]["relation"] == WORSE]
    if len(tied) == 1:
        why = f"{winner} has the best {score}"
        if clear:
            why += f" and is clearly ahead of {_names(clear)} (the 95% interval of the difference excludes 0)"
    else:
        why = (f"{_names(tied)} are tied on {score} (no clear difference from the best mean, {best}'s); "
               f"{winner} is the cheapest of them ({cost[winner]} training tokens), so it is the one handed over")
        if clear:
            why += f"; {_names(clear)} {'is' if len(clear) == 1 else 'are'} clearly behind"
    if unknown:
        why += (f"; the difference from {_names(unknown)} could not be estimated (one seed and no per-item "
                "scores), so the best mean wins")
    if not METHODS[winner].trains:
        why += ("; no trained method is clearly better than the untrained model, so no adapter is handed over "
                "(try more task data, more steps or another method)")
    if n_seeds == 1:
        why += "; with one seed the intervals cover the test items only, not training randomness"
    return why + "."


def link_best(out: Path, run_dir: str | None) -> Path | None:
    """Point out/best at `run_dir` (relative symlink, else a copy), atomically; None removes a stale one."""
    out, best = Path(out), Path(out) / "best"
    tmp = out / ".best.tmp"
    check_best(out)
    _remove(tmp)
    if run_dir is None:
        _remove(best)
        return None
    target = Path(run_dir)
    if not (target / "adapter").is_dir():
        raise TellkitError(f"the winning run {target} has no adapter/ folder; rerun `tellkit compare` to finish it")
    try:
        os.symlink(os.path.relpath(target.resolve(), out.resolve()), tmp, target_is_directory=True)
    except OSError:  # no symlinks here (e.g. Windows without the privilege): copy the run folder
        shutil.copytree(target, tmp, symlinks=True)
        (tmp / COPY_MARK).write_text(f"a copy of {target.name} made by tellkit compare\n", encoding="utf-8")
    if best.is_dir() and not best.is_symlink():
        shutil.rmtree(best)  # tellkit's copy (check_best); os.replace cannot put anything over a non-empty folder
    os.replace(tmp, best)
    return best


def check_best(out: Path) -> None:
    """Raise unless out/best (and its temp name) is absent or a link or copy tellkit made."""
    for path in (Path(out) / "best", Path(out) / ".best.tmp"):
        if (path.exists() or path.is_symlink()) and not _made_by_tellkit(path, Path(out)):
            raise TellkitError(f"{path} is not a link tellkit made (compare links its winner there); tellkit does "
                               "not replace it: move or rename it, then rerun `tellkit compare` (finished cells "
                               "are reused)")


def _made_by_tellkit(path: Path, out: Path) -> bool:
    if path.is_symlink():  # link_best links a run folder inside the compare folder, by a relative path
        target = os.readlink(path)
        return not os.path.isabs(target) and (out / target).resolve().is_relative_to(out.resolve())
    return path.is_dir() and (path / COPY_MARK).is_file()


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def hand_over(result: dict, cfg: Config, out: Path) -> dict:
    """Pick the winner within the forgetting budget and write `best/`; returns the winner record stored in
    comparison.json, with the budget's judgement and the method that would win without it."""
    score = chosen_score(result, cfg)
    judged = budget.judge(result, cfg.eval.general_score, cfg.compare.max_general_drop)
    unconstrained = pick(result, score)
    winner = pick(result, score, excluded=judged["excluded"]) if judged and judged["excluded"] else unconstrained
    extra = budget.reason(judged, winner["method"], unconstrained["method"])
    winner = {**winner, "budget": judged, "without_budget": unconstrained["method"],
              "reason": winner["reason"][:-1] + f"; {extra}." if extra else winner["reason"],
              # every general score out of distribution: each method's change from base (the verdict table)
              "general": {k: budget.changes(result, k) for k in budget.ood_keys(result["cells"])}}
    best = link_best(out, winner["run_dir"] if METHODS[winner["method"]].trains else None)
    return {**winner, "best_dir": str(best) if best else None, "commands": commands(str(best)) if best else []}


def commands(best_dir: str) -> list[str]:
    """How to use the handed-over adapter (the report and the CLI print these)."""
    return [f"tellkit predict {best_dir} --input FILE", f"tellkit export {best_dir} --out DIR"]


def verdict_table(winner: dict) -> str:
    """Plain-text verdict table for the terminal: the task score and, when measured, each general score out
    of distribution as its change from base with a paired interval (the budget's score marked with a `!`
    where a method breaks the budget)."""
    score, general = winner["score"], winner.get("general") or {}
    judged = winner.get("budget") or {}
    width = {k: max(30, len(f"{pooled.split(k)[1]} vs base")) for k in general}
    lines = [f"{'method':<14} {score:>24}  " + "".join(f"{pooled.split(k)[1] + ' vs base':>{width[k]}}  " for k in general)
             + f"{'train tokens':>12}  vs best"]
    for r in winner["rows"]:
        ci = "" if r["ci_low"] is None or math.isnan(r["ci_low"]) else f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        mean = "–" if r["mean"] is None or math.isnan(r["mean"]) else f"{r['mean']:.3f}"
        d = r["diff"]
        vs = r["relation"] + ("" if not d or d["mean_diff"] == 0 else f" ({-d['mean_diff']:+.3f})")
        mark = "*" if r["method"] == winner["method"] else " "
        cols = f"{mark}{r['method']:<13} {mean + ci:>24}  "
        for k, by_method in general.items():
            text = "reference" if r["method"] == "base" else budget.fmt_diff(by_method.get(r["method"]), k)
            over = k == judged.get("key") and r["method"] in judged.get("excluded", [])
            cols += f"{text + (' !' if over else ''):>{width[k]}}  "
        lines.append(f"{cols}{r['train_tokens']:>12}  {vs}")
    return "\n".join(lines)
