"""`tellkit` command line: each subcommand is one function of `tellkit.api`; this file parses the
arguments and prints the results, nothing else.

User mistakes (TellkitError) and OS errors on the user's paths (permission denied, disk full, ...)
print one `error:` line and exit 2; `--debug` shows the traceback. Every number an option takes is
range-checked by argparse, and KEY=VALUE overrides may come before or after the options.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from . import allocator, api, threads
from .console import count as _count
from .console import describe_os_error, parse, print_error, tracked_stderr
from .console import seed as _seed
from .errors import TellkitError


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. mix.ratio=100 train.lr=1e-4")


def _cmd_validate(a) -> None:
    summary = api.validate(api.load(a.config, a.overrides), overwrite=a.overwrite)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    print("\n".join(api.preflight_lines(summary["training"])))
    fits = ", and training fits in memory" if summary["training"]["memory"] else ""
    print(f"ok: config, data, model and ratio are valid{fits}")


def _cmd_mix(a) -> None:
    from pathlib import Path

    cfg = api.load(a.config, a.overrides)
    out = Path(a.out or cfg.output.dir)
    m = api.mix(cfg, out)
    r = m.report
    ratio = "n/a" if r["achieved_ratio"] is None else f"{r['achieved_ratio']:.3f}"
    print(f"mixture: {r['total']['examples']} examples, {r['total']['tokens']:,} tokens "
          f"({r['task']['tokens']:,} task / {r['general']['tokens']:,} general; "
          f"supervised {r['total']['supervised_tokens']:,}); ratio requested {r['requested_ratio']:g}, achieved {ratio}")
    print(f"fingerprint: {r['fingerprint']}")
    print(f"wrote {out / 'mixture.jsonl'} and {out / 'mixture.json'}")


def _cmd_train(a) -> None:
    cfg = api.load(a.config, a.overrides)
    out = (api.run if a.command == "run" else api.train)(cfg, overwrite=a.overwrite, resume=a.resume)
    print(f"adapter: {out / 'adapter'}")
    print(f"mixture report: {out / 'mixture.json'}")
    print(f"run record: {out / 'run.json'}")
    if a.command == "run":
        print(f"report: {out / 'report.md'} and {out / 'report.html'}")


def _cmd_eval(a) -> None:
    result, where = api.evaluate(a.target, a.overrides, base=a.base, limit=a.limit)
    for metric, res in result["metrics"].items():
        print(f"{metric:>8}: " + ", ".join(f"{k} {v['value']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]"
                                          for k, v in res["scores"].items()) + f"  (n={res.get('n')})")
    g = result["generation"]
    print(f"generation: {g['generated_tokens']} tokens in {g['seconds']} s ({g['tokens_per_second']} tok/s)")
    print(f"wrote {where / 'scores.json'} and {where / 'predictions.jsonl'}")


def _cmd_compare(a) -> None:
    from pathlib import Path

    cfg = api.load(a.config, a.overrides)
    winner = api.compare(cfg, **_execution(a))["winner"]
    out = Path(cfg.output.dir)
    print(api.verdict_table(winner))
    print(f"winner: {winner['method']} by {winner['score']}. {winner['reason']}")
    if winner["best_dir"]:
        print(f"best/: {winner['best_dir']} -> {Path(winner['run_dir']).name}")
        print("use it: " + "  |  ".join(winner["commands"]))
    else:
        print("no adapter handed over (base won): best/ is not written")
    print(f"comparison: {out / 'comparison.json'}")
    print(f"report: {out / 'report.md'} and {out / 'report.html'}")
    print(f"plots: {out}/" + "{" + ",".join(sorted(p.stem for p in out.glob("*.png"))) + "}.png")


def _execution_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=_count, default=1, metavar="N",
                   help="run N cells at a time on this machine, each in its own process (one GPU each, "
                        "or a share of the CPU cores)")
    p.add_argument("--ray", metavar="auto|ADDRESS|local",
                   help="run every cell as a Ray task: on the running cluster (auto), at ADDRESS, or on a new "
                        "local instance (needs pip install 'tellkit[ray]'; see docs/scaling.md)")
    p.add_argument("--cell-cpus", type=_count, default=1, metavar="K", help="with --ray: CPUs each cell declares")


def _execution(a) -> dict:
    return {"workers": a.workers, "ray": a.ray, "cell_cpus": a.cell_cpus}


def _cmd_sweep(a) -> None:
    from pathlib import Path

    cfg = api.load(a.config, a.overrides)
    summary = api.sweep(cfg, **_execution(a), only=a.only, replan=a.replan)
    out = Path(cfg.output.dir)
    if summary.get("partial"):
        print(f"{summary['cells_done']} of {summary['cells_planned']} planned cells are done; the summary is written "
              f"when all are. Partial results: tellkit report {out}")
        return
    for m in summary["multiplier"]:
        bound = "<=" if "upper bound" in m["note"] else ""
        low, high = (f"{x:.2f}x" if x is not None else none for x, none in zip(m["interval"], ("–", "open")))
        need = (f"SFT needs {bound}{m['multiplier']:.2f}x the task data [95% {low}, {high}]"
                if m["multiplier"] is not None
                else "SFT never reaches it within the swept scales")
        note = f" ({m['note']})" if m["note"] and m["multiplier"] is not None else ""
        print(f"{m['task_tokens']} task tokens: TELL {m['tell_score']:.3f} at ratio {m['tell_ratio']:g}; {need}{note}")
    print(f"sweep: {out / 'sweep.csv'} and {out / 'sweep.json'}")
    print(f"report: {out / 'report.md'} and {out / 'report.html'}")


def _cmd_probe(a) -> None:
    r = api.probe(api.load(a.config, a.overrides), run_dir=a.run, out_dir=a.out)
    for model, block in r["models"].items():
        for name, m in block["metrics"].items():
            print(f"{model:>8} {name:<24} probe acc {m['probe_accuracy']:.3f} ± {m['probe_accuracy_std']:.3f}  "
                  f"centroid dist {m['centroid_cosine_distance']:.4f}  silhouette {m['silhouette']:.3f}")
    print(f"layer {r['layer']}/{r['n_layers']}, {r['pooling']} pooling, {r['seconds']} s")


def _cmd_anchor_draft(a) -> None:
    cfg = api.load(a.config, a.overrides)
    anchors, out = api.draft_anchors(cfg, out=a.out, k=a.k, n=a.n, model=a.model, max_new_tokens=a.max_new_tokens,
                                     seed=a.seed)
    print("\n".join(f"- {x}" for x in anchors))
    print(f"wrote {out}: edit it, then `tellkit anchor rank {a.config} --anchors {out}`")


def _cmd_anchor_rank(a) -> None:
    from pathlib import Path

    cfg = api.load(a.config, a.overrides)
    ranked = api.rank_anchors(cfg, a.anchors, out_dir=a.out)
    for r in ranked:
        print(f"{r['rank']:>3}. acc {r['probe_accuracy']:.3f}  dist {r['centroid_cosine_distance']:.4f}  "
              f"sil {r['silhouette']:.3f}  {r['anchor']}")
    print(f"wrote {Path(a.out or Path(cfg.output.dir) / 'anchors') / 'anchors_ranked.json'} (+ .md/.html)")


def _cmd_report(a) -> None:
    md, html, sweep = api.report(a.run_dir)
    if sweep is not None:
        print(f"{sweep['cells_done']} of {sweep['cells_planned']} planned cells done"
              + (" (partial results)" if sweep["partial"] else ""))
    print(f"report: {md} and {html}")


def _cmd_export(a) -> None:
    out = api.export(a.run_dir, a.out, gguf=a.gguf, outtype=a.outtype)
    print(f"exported: {out} (merged safetensors + tokenizer; anchor in its chat template and tellkit_anchor.json)")
    for f in sorted(out.glob("gguf/*.gguf")):
        print(f"gguf: {f}")
    print(f"model card: {out / 'README.md'}")


def _cmd_predict(a) -> None:
    n = api.predict(a.run_dir, a.input, a.output, max_new_tokens=a.max_new_tokens, batch_size=a.batch_size)
    if a.output:
        print(f"wrote {n} predictions to {a.output}", file=sys.stderr)


def _cmd_chat(a) -> None:
    api.chat(a.run_dir, max_new_tokens=a.max_new_tokens)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tellkit", description="Token-Efficient Leverage Learning (TELL)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check config, data, model and ratio without training")
    _config_args(p)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("mix", help="build the TELL mixture (mixture.jsonl + mixture.json)")
    _config_args(p)
    p.add_argument("--out", help="folder for the mixture files (default: output.dir)")
    p.set_defaults(func=_cmd_mix)

    for name, help_ in (("train", "mix + LoRA training"), ("run", "the whole pipeline for one config")):
        p = sub.add_parser(name, help=help_)
        _config_args(p)
        p.add_argument("--overwrite", action="store_true", help="replace a finished or different run in output.dir")
        p.add_argument("--resume", action="store_true",
                       help="continue an interrupted run (also the default when output.dir holds one)")
        p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a finished run (RUN_DIR or CONFIG) or, with --base, the base model")
    p.add_argument("target", help="run folder, or a config (evaluates its output.dir)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. eval.max_new_tokens=64")
    p.add_argument("--base", action="store_true", help="evaluate the untrained base model (config only)")
    p.add_argument("--limit", type=_count, help="evaluate only the first N test examples")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("compare", help="tell vs sft / sft+anchor / sft-matched / general-only / base over seeds")
    _config_args(p)
    _execution_args(p)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("sweep", help="ratio x task-scale x method x seed grid (resumable) with curves")
    _config_args(p)
    _execution_args(p)
    p.add_argument("--only", action="append", metavar="KEY=V1,V2",
                   help="run only these cells of the planned grid (seed, task_tokens, ratio or method; repeatable), "
                        "e.g. to split one sweep over invocations")
    p.add_argument("--replan", action="store_true",
                   help="accept a changed grid for an existing sweep folder (finished cells it shares are kept)")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("probe", help="hidden-state separation of task(+anchor) vs general queries (+ t-SNE)")
    _config_args(p)
    p.add_argument("--run", help="a finished run folder: also probe its adapter (merged)")
    p.add_argument("--out", help="output folder (default: <output.dir>/probe)")
    p.set_defaults(func=_cmd_probe)

    p = sub.add_parser("anchor", help="draft and rank anchor prompts")
    asub = p.add_subparsers(dest="anchor_command", required=True)
    d = asub.add_parser("draft", help="draft anchor candidates with a model (+ one template candidate)")
    _config_args(d)
    d.add_argument("--n", type=_count, default=5, help="sampled candidates")
    d.add_argument("--k", type=_count, default=4, help="task examples shown to the model")
    d.add_argument("--model", help="drafting model (alias or local folder; default: model.name)")
    d.add_argument("--max-new-tokens", type=_count, default=48)
    d.add_argument("--seed", type=_seed, default=0)
    d.add_argument("--out", help="anchor file (default: <output.dir>/anchors/anchors.txt)")
    d.set_defaults(func=_cmd_anchor_draft)
    r = asub.add_parser("rank", help="rank anchor candidates by base-model separation from general queries")
    _config_args(r)
    r.add_argument("--anchors", required=True, help="anchor file, one per line ('#' = comment)")
    r.add_argument("--out", help="output folder (default: <output.dir>/anchors)")
    r.set_defaults(func=_cmd_anchor_rank)

    p = sub.add_parser("report", help="(re)write report.md/report.html for a run, compare or sweep folder "
                                      "(a sweep's partial results at any time)")
    p.add_argument("run_dir")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("export", help="merge a run's adapter into its base model (+ GGUF) for serving")
    p.add_argument("run_dir", help="a finished run folder, or a compare folder (its best/)")
    p.add_argument("--out", required=True, help="new folder to write (must not exist)")
    p.add_argument("--gguf", action="store_true", help="also write a GGUF file (llama.cpp / Ollama)")
    p.add_argument("--outtype", default="f16", choices=["f16", "q8_0", "f32"], help="GGUF weight type")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("predict", help="run a trained model over inputs (anchor applied), JSONL out")
    p.add_argument("run_dir", help="a finished run folder, or a compare folder (its best/)")
    p.add_argument("--input", required=True, help="JSONL/CSV/... in a task format, a .txt file (one prompt per "
                                                  "line), or - for stdin (JSONL or one prompt per line)")
    p.add_argument("--output", help="JSONL file to write (default: stdout)")
    p.add_argument("--max-new-tokens", type=_count, help="default: the run's eval.max_new_tokens")
    p.add_argument("--batch-size", type=_count, help="default: the run's eval.batch_size")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("chat", help="interactive chat with a trained model (anchor applied, streamed)")
    p.add_argument("run_dir", help="a finished run folder, or a compare folder (its best/)")
    p.add_argument("--max-new-tokens", type=_count, help="default: the run's eval.max_new_tokens")
    p.set_defaults(func=_cmd_chat)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the console command (not a call from Python): run with tcmalloc/mimalloc, see allocator.py
        threads.configure()  # before torch loads OpenMP: threads = free cores; passive wait when sharing (threads.py)
        allocator.reexec_with_preferred()  # the re-executed process inherits that choice
    args = parse(build_parser(), sys.argv[1:] if argv is None else argv)
    if not args.debug:  # library deprecation chatter is not the user's business
        warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        with tracked_stderr():
            try:
                args.func(args)
            except TellkitError as e:
                if args.debug:
                    raise
                print_error(str(e))
                return e.exit_code
            except OSError as e:  # permission denied, disk full, ... on a path the user gave
                if args.debug:
                    raise
                print_error(describe_os_error(e))
                return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        _end_process_group()
    return 0


def _end_process_group() -> None:
    """Under torchrun: tear the process group down before exit. Left to the interpreter's exit, a
    gloo worker thread can outlive it and abort the rank after its work is done ("terminate called
    without an active exception", seen once in the two-rank test)."""
    dist = sys.modules.get("torch.distributed")  # never import torch just for this
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
