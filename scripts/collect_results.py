"""Collect the study's outputs (scripts/run_study.sh) into docs/results/: tables as Markdown + the plots.

    python scripts/collect_results.py [STUDY_DIR]   # reads examples/runs/study, writes docs/results/

Every number comes from tellkit's own comparison.json / sweep.json / probe.json / run.json files.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tellkit.metrics.bootstrap import difference_ci, mean_ci_over_seeds  # noqa: E402
from tellkit.metrics.headline import HEADLINE_ORDER  # noqa: E402
from tellkit.report.compare_report import fmt_ci, readable_verdict  # noqa: E402
from tellkit.report.html import md_table  # noqa: E402

STUDY = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "examples" / "runs" / "study"
OUT = ROOT / "docs" / "results"


METHOD_ORDER = ("base", "general-only", "sft", "sft+anchor", "sft-matched", "tell")


def _by_cell(rows: list[dict]) -> dict:
    """{(task_tokens, method, ratio): [row per seed]}"""
    out: dict = {}
    for r in rows:
        out.setdefault((r["task_tokens"], r["method"], r["ratio"]), []).append(r)
    return out


def _scores(rows: list[dict], k: int = 3) -> list[str]:
    keys = {key for r in rows for key in r if "/" in key}
    return [s for s in HEADLINE_ORDER if s in keys][:k]


def _mean(vals: list) -> float:
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else float("nan")


def grid_table(rows: list[dict]) -> list[str]:
    """Mean over seeds with a Student-t 95% interval, and the compute each cell used."""
    scores = _scores(rows)
    cells = _by_cell(rows)
    table = []
    for (t, m, r), rs in sorted(cells.items(), key=lambda kv: (kv[0][0], METHOD_ORDER.index(kv[0][1]), kv[0][2])):
        table.append([t, m, f"{r:g}", len(rs), *[fmt_ci(mean_ci_over_seeds([x[s] for x in rs])) for s in scores],
                      *[f"{_mean([x[k] for x in rs]):.0f}" for k in ("train_tokens", "optimizer_steps")]])
    return [md_table(["task tokens", "method", "ratio", "seeds", *scores, "train tokens", "steps"], table), ""]


def difference_table(rows: list[dict], score: str) -> list[str]:
    """TELL at each ratio minus each baseline at the same scale (Welch interval over seeds)."""
    cells = _by_cell(rows)
    general = [x[score] for (t, m, r), rs in cells.items() if m == "general-only" for x in rs]
    means = {key: _mean([x[score] for x in rs]) for key, rs in cells.items()}
    best = {}  # scale -> TELL's best ratio (the controls without task data are compared there only)
    for (t, m, r), v in sorted(means.items()):
        if m == "tell" and (t not in best or v > means[(t, "tell", best[t])]):
            best[t] = r
    out = []
    for (t, m, r), rs in sorted(cells.items()):
        if m != "tell":
            continue
        tell = [x[score] for x in rs]
        for other in ("sft", "sft+anchor", "sft-matched", "general-only", "base"):
            if other in ("general-only", "base") and r != best[t]:
                continue
            same = (t, other, r if other == "sft-matched" else 0.0)
            vals = general if other == "general-only" else [x[score] for x in cells.get(same, [])]
            if not vals or (other == "sft+anchor" and r == 0):
                continue
            d = difference_ci(tell, vals)
            pair = f"tell vs {other}"
            out.append([t, f"{r:g}", other, f"{d['mean_diff']:+.3f}", f"[{d['ci_low']:.3f}, {d['ci_high']:.3f}]",
                        readable_verdict(pair, d["verdict"])])
    return [md_table(["task tokens", "TELL ratio", "baseline", f"TELL − baseline ({score})", "95% CI", "verdict"],
                     out), ""]


def sweep_section(name: str) -> list[str]:
    folder = STUDY / name
    data = json.loads((folder / "sweep.json").read_text())
    s, rows = data["summary"], data["rows"]
    score = s["primary_score"]
    left_out = sorted({n.rsplit("-s", 1)[0] for n in s.get("over_budget") or []})
    md = [f"Primary score `{score}`; {s['cells']} rows; the cells' training time sums to "
          f"{s['sum_of_cell_seconds'] / 60:.0f} min (evaluation not included). Training-token budget per cell "
          f"{s.get('max_train_tokens')}; left out as over it (every seed): {', '.join(left_out) or 'none'}.", ""]
    md += grid_table(rows)
    md += difference_table(rows, score)
    mult = [[m["task_tokens"], f"{m['tell_ratio']:g}", f"{m['tell_score']:.3f}", _num(m["sft_tokens_needed"]),
             _num(m["multiplier"], 2), m["note"]] for m in s["multiplier"]]
    md += ["Data-efficiency multiplier (task tokens SFT needs to match TELL's best ratio, log-linear "
           "interpolation between the swept scales):", "",
           md_table(["task tokens", "best TELL ratio", "TELL score", "SFT tokens needed", "multiplier", "note"],
                    mult), ""]
    for png in sorted(folder.glob("*.png")):
        shutil.copy(png, OUT / f"{name}-{png.name}")
        md.append(f"![{png.stem}](results/{name}-{png.name})")
    return md + [""]


def _num(x, digits: int = 0) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def probe_section(name: str) -> list[str]:
    folder = STUDY / name
    r = json.loads((folder / "probe.json").read_text())
    rows = [[model, pair, f"{m['probe_accuracy']:.3f} ± {m['probe_accuracy_std']:.3f}",
             f"{m['centroid_cosine_distance']:.4f}", f"{m['silhouette']:.3f}"]
            for model, block in r["models"].items() for pair, m in block["metrics"].items()]
    n = " / ".join(f"{v} {k}" for k, v in r["n_queries"].items())
    md = [f"Layer {r['layer']} of {r['n_layers']}, {r['pooling']}-token pooling, {n} queries; "
          f"adapter: `{Path(r['run_dir']).name if r.get('run_dir') else '–'}`.", "",
          md_table(["model", "groups", "probe accuracy", "centroid cos. dist.", "silhouette"], rows), ""]
    for png in sorted(folder.glob("*.png")):
        shutil.copy(png, OUT / f"{name}-{png.name}")
        md.append(f"![{png.stem}](results/{name}-{png.name})")
    return md + [""]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    parts = []
    for name, fn, needs in (("halu-sweep", sweep_section, "sweep.json"), ("halu-probe", probe_section, "probe.json"),
                            ("orders-sweep", sweep_section, "sweep.json"),
                            ("orders-probe", probe_section, "probe.json")):
        if (STUDY / name / needs).exists():
            parts += [f"### {name}", "", *fn(name)]
    (OUT / "tables.md").write_text("\n".join(parts), encoding="utf-8")
    print(f"wrote {OUT / 'tables.md'}")


if __name__ == "__main__":
    main()
