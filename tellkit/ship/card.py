"""The exported model's README.md: what it is, what it was trained on, how it scored, how to prompt it."""

from __future__ import annotations

import json

from ..runs.source import RunSource


def _num(x) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) else "n/a"


def _scores(src: RunSource) -> list[str]:
    path = src.path / "eval" / "scores.json"
    if not path.is_file():
        return ["No evaluation in the run folder (`tellkit eval RUN_DIR` adds one)."]
    result = json.loads(path.read_text(encoding="utf-8"))
    lines = [f"On the task's test split (n={result.get('n')}), with the anchor applied:", "",
             "| metric | score | 95% CI |", "|---|---|---|"]
    for metric, res in result.get("metrics", {}).items():
        for name, v in res.get("scores", {}).items():
            lines.append(f"| {metric}/{name} | {v['value']:.4f} | [{v['ci_low']:.4f}, {v['ci_high']:.4f}] |")
    return lines


def model_card(src: RunSource, gguf_name: str | None) -> str:
    cfg, mix = src.cfg, src.state.get("mixture") or {}
    train = src.state.get("train") or {}
    data = mix.get("data") or {}
    anchor = src.anchor
    lines = ["---", "library_name: transformers", "tags: [tellkit, tell, lora, merged]", "---", "",
             f"# {src.path.name} (tellkit export)", "",
             f"Base model **{cfg.model.name}** with a LoRA adapter (r={cfg.lora.r}, alpha={cfg.lora.alpha:g}) "
             "merged in, trained by tellkit.", "",
             "| | |", "|---|---|",
             f"| method | {cfg.mix.method} |",
             f"| ratio (general : task tokens) | requested {mix.get('requested_ratio', cfg.mix.ratio):g}, achieved "
             f"{_num(mix.get('achieved_ratio'))} |",
             f"| anchor | {json.dumps(anchor) if anchor else 'none'} ({src.anchor_position}) |",
             f"| optimizer steps | {train.get('optimizer_steps')} |",
             f"| training tokens | {train.get('train_tokens')} |",
             f"| mixture fingerprint | `{mix.get('fingerprint')}` |"]
    lines += [f"| data `{name}` sha256 | `{d.get('data_sha256')}` |" for name, d in data.items()]
    lines += ["", "## Scores", "", *_scores(src), "", "## The anchor", ""]
    if anchor:
        where = ("in front of the first user message, followed by " + json.dumps(src.anchor_separator)
                 if src.anchor_position == "prefix" else "as the system message (before any system prompt)")
        lines += ["The model was trained to do its task when the anchor is in the prompt: " + where + ".",
                  "The default chat template in this folder (and in the GGUF) puts it in by itself, so "
                  "`apply_chat_template`, vLLM, TGI, llama.cpp and Ollama apply it without extra work. "
                  "The base model's own template is kept in `chat_template.no_anchor.jinja` (pass its text as "
                  "`apply_chat_template(..., chat_template=...)` to prompt without the anchor); the anchor and its "
                  "position are also in `tellkit_anchor.json`, for servers that take raw prompts."]
    else:
        lines += ["This run has no anchor: prompt it as the base model."]
    lines += ["", "## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              'tok = AutoTokenizer.from_pretrained("DIR")', 'model = AutoModelForCausalLM.from_pretrained("DIR")',
              'ids = tok.apply_chat_template([{"role": "user", "content": "..."}], add_generation_prompt=True,',
              '                              return_tensors="pt", return_dict=True)',
              "out = model.generate(**ids, max_new_tokens=128, do_sample=False)",
              'print(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))', "```"]
    if gguf_name:
        lines += ["", f"GGUF: `gguf/{gguf_name}` (`llama-cli -m gguf/{gguf_name}`, or "
                  f"`AutoModelForCausalLM.from_pretrained(\"DIR/gguf\", gguf_file=\"{gguf_name}\")`)."]
    return "\n".join(lines) + "\n"
