"""probe.md / probe.html (hidden-state separation) and anchors_ranked.md / .html (anchor candidates)."""

from __future__ import annotations

from pathlib import Path

from .html import md_table, shorten, write_report

METRIC_COLUMNS = ["probe acc.", "± std", "centroid cos. dist.", "silhouette"]
_EXPLAIN = ("Probe accuracy: cross-validated logistic regression on the pooled hidden states "
            "(0.5 = chance, 1.0 = linearly separable). Centroid cosine distance: 1 − cos of the two "
            "group means. Silhouette: cosine silhouette of the two groups (−1..1, higher = tighter, "
            "more separate clusters).")


def _metric_cells(m: dict) -> list:
    return [m.get("probe_accuracy"), m.get("probe_accuracy_std"), m.get("centroid_cosine_distance"),
            m.get("silhouette")]


def probe_markdown(result: dict) -> str:
    anchor = result.get("anchor")
    n = result.get("n_queries", {})
    md = ["# tellkit probe — does the anchor separate task queries?", "",
          f"Model `{result.get('model_ref')}`"
          + (f", run `{result['run_dir']}`" if result.get("run_dir") else "")
          + f"; hidden states of layer **{result.get('layer')}** of {result.get('n_layers')} "
          f"(0 = embeddings), **{result.get('pooling')}** pooling; "
          f"{n.get('task')} task and {n.get('general')} general queries (seed {result.get('seed')}).", "",
          f"Anchor ({result.get('anchor_position')}): `{shorten(anchor)}`" if anchor else
          "No anchor configured: only task vs general is probed.", ""]
    rows = []
    for model, block in result.get("models", {}).items():
        for comparison, m in block.get("metrics", {}).items():
            rows.append([model, comparison.replace("_vs_", " vs "), *_metric_cells(m)])
    md += ["## Separation from general queries", "", md_table(["model", "groups", *METRIC_COLUMNS], rows), "",
           _EXPLAIN, ""]
    for model, block in result.get("models", {}).items():
        m = block.get("metrics", {})
        if "task+anchor_vs_general" in m and "task_vs_general" in m:
            with_, without = m["task+anchor_vs_general"], m["task_vs_general"]
            md += [f"- **{model}**: the anchor changes probe accuracy by "
                   f"{with_['probe_accuracy'] - without['probe_accuracy']:+.3f} and the centroid cosine distance "
                   f"by {with_['centroid_cosine_distance'] - without['centroid_cosine_distance']:+.3f}."]
        if "task+anchor_vs_task" in m:
            shift = m["task+anchor_vs_task"]
            md += [f"- **{model}**: the anchor moves the same task queries by a centroid cosine distance of "
                   f"{shift['centroid_cosine_distance']:.4f} (probe accuracy {shift['probe_accuracy']:.3f} tells "
                   "anchored from unanchored)."]
    if md[-1].startswith("- "):
        md += [""]
    plain = result.get("models", {}).get("base", {}).get("metrics", {}).get("task_vs_general", {})
    if anchor and plain.get("probe_accuracy", 0) >= 0.95:
        md += ["Task queries separate from general ones even without the anchor (base probe accuracy "
               f"{plain['probe_accuracy']:.3f}): their own wording sets them apart, so the anchor adds a "
               "consistent marker more than separation.", ""]
    for model, block in result.get("models", {}).items():
        md += [f"## t-SNE — {model}", "", f"![t-SNE {model}]({block['tsne']})", ""]
    md += [f"Probe time: {result.get('seconds')} s.", ""]
    return "\n".join(md)


def write_probe_report(result: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """probe.md + probe.html (images inlined) in out_dir, which must hold the t-SNE PNGs."""
    return write_report(probe_markdown(result), Path(out_dir), stem="probe", title="tellkit probe")


def rank_markdown(report: dict) -> str:
    md = ["# tellkit anchor ranking", "",
          f"Base model `{report.get('model_ref')}`, layer {report.get('layer')} of {report.get('n_layers')}, "
          f"{report.get('pooling')} pooling; {report.get('n_queries', {}).get('task')} task queries with each "
          f"candidate vs {report.get('n_queries', {}).get('general')} general queries. Ranked by probe "
          "accuracy, ties broken by centroid cosine distance, then silhouette.", ""]
    base = report.get("no_anchor") or {}

    def gain(r: dict) -> float | None:
        a, b = r.get("centroid_cosine_distance"), base.get("centroid_cosine_distance")
        return None if a is None or b is None else a - b

    rows = [[r["rank"], *_metric_cells(r), gain(r), shorten(r["anchor"], 120)] for r in report.get("ranked", [])]
    if base:
        rows.append(["(no anchor)", *_metric_cells(base), 0.0, "task queries without an anchor, for reference"])
    md += [md_table(["rank", *METRIC_COLUMNS, "Δ dist. vs no anchor", "anchor"], rows, floatfmt="{:.4f}"), "",
           _EXPLAIN + " Δ dist.: centroid cosine distance gained over the same task queries without an anchor; "
           "when all candidates gain only a few thousandths, their order says little.", "",
           "Separation on the untrained model is a proxy: it says which anchor the model already reads as "
           "distinctive, not which trains best. Put the chosen one in `anchor.text` (or `anchor.file`).", ""]
    return "\n".join(md)


def write_rank_report(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """anchors_ranked.md + anchors_ranked.html in out_dir."""
    return write_report(rank_markdown(report), Path(out_dir), stem="anchors_ranked", title="tellkit anchor ranking")
