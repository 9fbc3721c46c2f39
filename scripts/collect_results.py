"""Collect the study's outputs (scripts/run_study.sh) into docs/results/: tables as Markdown + the plots.

    python scripts/collect_results.py            # reads examples/runs/study, writes docs/results/

Every number comes from tellkit's own comparison.json / sweep.json / probe.json / run.json files.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tellkit.report.compare_report import fmt_ci, headline_scores, readable_verdict  # noqa: E402
from tellkit.report.html import md_table  # noqa: E402

STUDY = ROOT / "examples" / "runs" / "study"
OUT = ROOT / "docs" / "results"


def compare_section(name: str) -> list[str]:
    folder = STUDY / name
    result = json.loads((folder / "comparison.json").read_text())
    summary = result["summary"]
    scores = headline_scores(summary)
    rows = []
    for m in result["methods"]:
        c = summary[m]["cost"]
        rows.append([m, *[fmt_ci(summary[m]["scores"].get(k)) for k in scores], int(c.get("task_tokens", 0)),
                     int(c.get("train_tokens", 0)), int(c.get("optimizer_steps", 0)), c.get("task_epochs", "–"),
                     c.get("wall_seconds", "–")])
    md = [md_table(["method", *scores, "task tokens", "train tokens", "steps", "task epochs", "train s"], rows), ""]
    diffs = [[pair, k, f"{d['mean_diff']:+.3f}", f"[{d['ci_low']:.3f}, {d['ci_high']:.3f}]", readable_verdict(pair, d["verdict"])]
             for pair, ds in result["differences"].items() for k, d in ds.items() if k in scores[:2]]
    md += [md_table(["pair", "score", "TELL − baseline", "95% CI", "verdict"], diffs), ""]
    for png in sorted(folder.glob("*.png")):
        shutil.copy(png, OUT / f"{name}-{png.name}")
        md.append(f"![{png.stem}](results/{name}-{png.name})")
    return md + [""]


def sweep_section(name: str) -> list[str]:
    folder = STUDY / name
    data = json.loads((folder / "sweep.json").read_text())
    s, rows = data["summary"], data["rows"]
    score = s["primary_score"]
    cols = ["method", "task_tokens", "ratio", "seed", score, "train_tokens", "optimizer_steps"]
    md = [f"Primary score `{score}`; sweep wall {s['total_seconds']} s, sum of cell training "
          f"{s['sum_of_cell_seconds']} s.", "", md_table(cols, [[r.get(c) for c in cols] for r in rows]), ""]
    mult = [[m["task_tokens"], m["tell_ratio"], m["tell_score"], m["sft_tokens_needed"], m["multiplier"], m["note"]]
            for m in s["multiplier"]]
    md += [md_table(["task tokens", "best TELL ratio", "TELL score", "SFT tokens needed", "multiplier", "note"],
                    mult), ""]
    for png in sorted(folder.glob("*.png")):
        shutil.copy(png, OUT / f"{name}-{png.name}")
        md.append(f"![{png.stem}](results/{name}-{png.name})")
    return md + [""]


def probe_section() -> list[str]:
    folder = ROOT / "examples" / "runs" / "quickstart" / "probe"
    r = json.loads((folder / "probe.json").read_text())
    rows = [[model, pair, f"{m['probe_accuracy']:.3f} ± {m['probe_accuracy_std']:.3f}",
             f"{m['centroid_cosine_distance']:.4f}", f"{m['silhouette']:.3f}"]
            for model, block in r["models"].items() for pair, m in block["metrics"].items()]
    md = [f"Layer {r['layer']} of {r['n_layers']}, {r['pooling']} pooling, {r.get('n_queries', '')} queries "  # n per group
          "per group.", "", md_table(["model", "groups", "probe accuracy", "centroid cos. dist.", "silhouette"],
                                     rows), ""]
    for png in sorted(folder.glob("*.png")):
        shutil.copy(png, OUT / f"probe-{png.name}")
        md.append(f"![{png.stem}](results/probe-{png.name})")
    return md + [""]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    parts = []
    for title, fn in (("orders-compare", compare_section), ("halu-compare", compare_section),
                      ("halu-sweep", sweep_section)):
        if (STUDY / title).exists():
            parts += [f"### {title}", "", *fn(title)]
    if (ROOT / "examples" / "runs" / "quickstart" / "probe" / "probe.json").exists():
        parts += ["### probe (quickstart run)", "", *probe_section()]
    (OUT / "tables.md").write_text("\n".join(parts), encoding="utf-8")
    print(f"wrote {OUT / 'tables.md'}")


if __name__ == "__main__":
    main()
