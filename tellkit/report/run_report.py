"""report.md / report.html for one run: what was trained, on what mixture, how it went, how it scores."""

from __future__ import annotations

import json
from pathlib import Path

from .. import owned
from ..errors import TellkitError
from ..runs.rundir import RunDir
from ..train.memory import report_lines
from .html import md_table, shorten, write_report
from .losses import SMOOTHING_NOTE, write_run_loss_plot


def write_run_report(run_dir: str | Path) -> tuple[Path, Path]:
    run = RunDir(run_dir)
    state = run.state()
    if state is None:
        raise TellkitError(f"{run.path} is not a tellkit run folder (no run.json), so it has no report to write")
    owned.require_run_folder(run.path, state, claiming=False)  # never write report.md into someone else's folder
    status = state.get("status", "unknown")
    m, t = state.get("mixture", {}), state.get("train", {})
    md = [f"# tellkit run — {run.path.name}", ""]
    if status != "complete":
        md += [f"> **INCOMPLETE RUN** — status: {status}. {state.get('reason', '')}", ""]
    md += [f"Method **{m.get('method', '?')}**, model `{state.get('model_ref', '?')}`, "
           f"anchor ({state.get('anchor_position', 'prefix')}): {_quote(state.get('anchor'))}", ""]
    if m:
        md += ["## Mixture", "", md_table(
            ["source", "examples", "unique", "tokens", "supervised tokens"],
            [[s, m[s]["examples"], m[s]["unique_examples"], m[s]["tokens"], m[s]["supervised_tokens"]]
             for s in ("task", "general")]), "",
            f"Ratio (general:task tokens) requested {m.get('requested_ratio')}, achieved "
            f"{_num(m.get('achieved_ratio'))}; seed {m.get('seed')}; fingerprint `{m.get('fingerprint', '')[:16]}…`", ""]
    if t:
        md += ["## Training", "", md_table(["optimizer steps", "train tokens", "wall s", "tok/s", "peak RSS MiB",
                                             "final loss", "final task loss"],
                                            [[t.get("optimizer_steps"), t.get("train_tokens"), t.get("wall_seconds"),
                                              t.get("tokens_per_second"), t.get("peak_rss_mib"), t.get("final_loss"),
                                              t.get("final_task_loss")]]), ""]
    if state.get("preflight"):
        md += ["### Step plan and memory", "", *report_lines(state["preflight"]), ""]
    if write_run_loss_plot(run.path, m.get("method", "run")):
        md += ["![loss](loss.png)", "", "Loss per supervised token: the whole mixture, and its task examples alone. "
               + SMOOTHING_NOTE, ""]
    scores = run.path / "eval" / "scores.json"
    if scores.exists():
        ev = json.loads(scores.read_text(encoding="utf-8"))
        rows = [[metric, score, _num(v["value"]), f"[{_num(v['ci_low'])}, {_num(v['ci_high'])}]", res.get("n")]
                for metric, res in ev["metrics"].items() for score, v in res["scores"].items()]
        md += ["## Evaluation", "", md_table(["metric", "score", "value", "95% CI", "n"], rows), "",
               "95% intervals: percentile bootstrap over the test items (held-out examples for `general`) of this "
               "one run, so they cover item sampling, not training randomness; ratio and corpus scores "
               "(F1, field_exact, chrF, BLEU) are recomputed on each resample.", "",
               f"Generation: {ev['generation']['generated_tokens']} tokens in {ev['generation']['seconds']} s "
               f"({ev['generation']['tokens_per_second']} tok/s, batch {ev['generation']['batch_size']}).", ""]
        preds = (run.path / "eval" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()[:3]
        md += ["### Samples", "", md_table(["gold", "output"], [[shorten(p["gold"]), shorten(p["output"])]
                                                               for p in map(json.loads, preds)]), ""]
    md += ["## Reproduce", "", f"`tellkit run {run.path / 'config.yaml'}` — versions: "
           + ", ".join(f"{k} {v}" for k, v in state.get("versions", {}).items() if k != "platform"), ""]
    return write_report("\n".join(md), run.path, title=f"tellkit run {run.path.name}")


def _num(x) -> str:
    return "–" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def _quote(text: str | None) -> str:
    return "none" if not text else f"“{text}”"
