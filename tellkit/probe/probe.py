"""`tellkit probe`: does the anchor pull task queries away from general queries inside the model?

TELL's mechanism (arXiv 2404.00914, the t-SNE of layer-16 hidden states) is that
the anchor prompt gives task examples a region of representation space of their
own, so LoRA can learn the task there without disturbing general behaviour.
This module measures that on the base model and, given a finished run, on the
trained adapter. The choices, where the paper is silent:

* Groups. ``task+anchor``: the first ``probe.n_queries`` task examples with the
  anchor (placed as in training: ``anchor.position`` / ``anchor.separator``);
  ``task``: the same examples without it; ``general``: ``probe.n_queries``
  general examples, a seeded sample (reservoir sampling, seed ``mix.seed``) of
  ``general.path`` (streamed, so a large corpus never has to fit in memory).
* Inputs are the QUERIES only: each example's conversation without its final
  assistant turn, rendered with the chat template and the generation prompt
  (`encode_prompt`), exactly what the model sees before it answers. Answers are
  left out because they would make the groups trivially separable by content.
* Layer. ``probe.layer``: None = the middle, ``n_layers // 2`` (16 for a
  32-layer Llama, the layer the paper plots); an integer index into
  ``output_hidden_states`` (negatives count from the end); or a fraction of the
  depth in (0, 1). Index convention (Hugging Face): index 0 is the embedding
  output, index i (1..n_layers) the output of decoder block i; the last index
  has the model's final norm applied in Llama-style models.
* Pooling. ``last`` (default): the state at the last real token of the prompt.
  In a causal LM it is the only position that has attended to the whole prompt,
  anchor included, and it is the state the first answer token is predicted
  from. ``mean``: the mean over all real prompt tokens (padding masked out).
* Cost: the forward pass stops after the probed block (a forward hook), so the
  default middle layer costs about half a forward pass per query.
* Batching: right padding with an attention mask. Under causal attention a real
  token never attends to the padding after it, so padding cannot change the
  pooled vector; prompts are sorted by length to keep padding small.
* Metrics: `separation_metrics` (centroid cosine distance, cosine silhouette,
  cross-validated linear-probe accuracy) for ``task+anchor`` vs ``general`` and
  for ``task`` vs ``general``: the difference is what the anchor adds. A t-SNE
  map of the three groups per model (PNG).
* The adapter is merged into the already-probed base weights (no second load),
  and probed with the same queries, layer and pooling.

Outputs in ``out_dir`` (default ``<output.dir>/probe``): ``probe.json``,
``tsne_base.png`` (+ ``tsne_adapter.png``), ``probe.md`` / ``probe.html``.
"""

from __future__ import annotations

import heapq
import logging
import numbers
import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..config import Config
from ..data.anchor import anchor_text, apply_anchor
from ..data.formats import to_examples
from ..data.readers import read_records
from ..data.tokenize import encode_prompt, prompt_ids
from ..errors import ConfigError, TellkitError
from ..io import write_json_atomic
from ..runs.loader import load_model, merge_adapter, model_ref
from ..runs.source import read_run, require_adapter
from .separation import separation_metrics, tsne_2d

log = logging.getLogger(__name__)

GROUPS = ("task+anchor", "task", "general")
# name -> (group labelled 1, group labelled 0). The last pair measures how far the anchor moves the very
# same task queries, which a ceiling-level task-vs-general probe cannot show.
COMPARISONS = {"task+anchor_vs_general": ("task+anchor", "general"), "task_vs_general": ("task", "general"),
               "task+anchor_vs_task": ("task+anchor", "task")}


# --------------------------------------------------------------------------- layers and states


def resolve_layer(spec: float | int | None, n_layers: int) -> int:
    """Index into ``output_hidden_states`` (0 = embeddings, i = output of block i, n_layers = last).

    None -> n_layers // 2; an integer (or integral float, as YAML/pydantic may give
    ``16.0``) -> that index, negatives counting from the end (-1 = last block);
    a float in (0, 1) -> round(fraction * n_layers).
    """
    if n_layers < 1:
        raise ConfigError(f"the model reports {n_layers} layers; cannot pick a probe layer")
    if spec is None:
        return n_layers // 2
    if isinstance(spec, bool) or not isinstance(spec, numbers.Real):
        raise ConfigError(f"probe.layer={spec!r}: use an integer layer index, a fraction in (0, 1), or null")
    value = float(spec)
    if value.is_integer():
        index = int(value)
        if not -(n_layers + 1) <= index <= n_layers:
            raise ConfigError(f"probe.layer={spec!r} is out of range: the model has {n_layers} layers "
                              f"(indices 0..{n_layers}, 0 = embeddings, or -{n_layers + 1}..-1)")
        return index % (n_layers + 1)
    if 0 < value < 1:
        return round(value * n_layers)
    raise ConfigError(f"probe.layer={spec!r}: a non-integer layer must be a fraction of depth in (0, 1)")


def num_layers(model) -> int:
    """Number of decoder blocks (hidden_states has one more entry: the embeddings)."""
    config = getattr(model, "config", None)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    n = getattr(text, "num_hidden_layers", None)
    if not isinstance(n, int):
        raise TellkitError(f"cannot tell the number of layers of {type(model).__name__} (no num_hidden_layers)")
    return n


def hidden_states(model, tokenizer, prompts: list[str], layer: int, pooling: str = "last",
                  batch_size: int = 8) -> np.ndarray:
    """Pooled hidden states of `prompts` at `layer` (an index into output_hidden_states): (n, d) float32.

    Prompts are already-rendered text (chat template included), tokenized without
    adding special tokens. "last" pools the last real token (in a causal LM the
    only position that has seen the whole prompt, anchor included); "mean" the
    masked mean over the real tokens. Right padding + attention mask, so padding
    never reaches a real position.
    """
    import torch

    if pooling not in ("last", "mean"):
        raise ConfigError(f"probe.pooling={pooling!r}: use 'last' or 'mean'")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: must be at least 1")
    if not prompts:
        raise TellkitError("no prompts to probe")
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    out: list[np.ndarray | None] = [None] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"  # so the last real token of row b sits at mask[b].sum() - 1
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start: start + batch_size]
                enc = tokenizer.pad({"input_ids": [prompt_ids(tokenizer, prompts[i]) for i in idx]}, padding=True,
                                    return_tensors="pt").to(model.device)
                mask = enc["attention_mask"]
                if bool((mask.sum(1) == 0).any()):
                    raise TellkitError("a probe prompt tokenizes to nothing; check the data and chat template")
                h = _layer_output(model, enc, layer).float()
                if pooling == "last":
                    last = mask.sum(1) - 1
                    pooled = h[torch.arange(h.shape[0], device=h.device), last]
                else:
                    m = mask.unsqueeze(-1).to(h.dtype)
                    pooled = (h * m).sum(1) / m.sum(1)
                for i, row in zip(idx, pooled.cpu().numpy()):
                    out[i] = row
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return np.stack(out).astype(np.float32)


class _Stop(Exception):
    """Raised by a forward hook once the probed layer has run: the blocks above it are never computed."""


def _decoder_layers(model):
    """The ModuleList of decoder blocks (Llama/Mistral/Qwen/...: model.layers; GPT-2 style: transformer.h)."""
    import torch

    for owner in (getattr(model, "model", None), getattr(model, "transformer", None)):
        for name in ("layers", "h"):
            blocks = getattr(owner, name, None)
            if isinstance(blocks, torch.nn.ModuleList):
                return blocks
    return None


def _layer_output(model, enc, layer: int):
    """hidden_states[layer] for one batch, stopping the forward pass after block `layer` when possible.

    A middle layer then costs about half a forward pass. The embeddings (0), the
    last index (final norm applied) and unknown architectures take the plain
    output_hidden_states path; tests check both paths agree.
    """
    n_layers = num_layers(model)
    blocks = _decoder_layers(model) if 0 < layer < n_layers else None
    if blocks is None or len(blocks) != n_layers:
        states = model(**enc, output_hidden_states=True, use_cache=False).hidden_states
        if not 0 <= layer < len(states):
            raise ConfigError(f"layer index {layer} is out of range: the model returns {len(states)} "
                              "hidden states (0 = embeddings)")
        return states[layer]
    captured = {}

    def hook(module, args, output):
        captured["h"] = output[0] if isinstance(output, tuple) else output
        raise _Stop

    handle = blocks[layer - 1].register_forward_hook(hook)
    try:
        model(**enc, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    return captured["h"]


# --------------------------------------------------------------------------- queries


def task_examples(cfg: Config, n: int) -> list[dict]:
    """The first n task examples (streamed: the rest of the file is not read)."""
    out = []
    for ex in to_examples(read_records(cfg.task.path), cfg.task.format, cfg.task.columns, id_prefix="task"):
        out.append(ex)
        if len(out) >= n:
            break
    return out


def general_examples(cfg: Config, n: int, seed: int) -> list[dict]:
    """A seeded uniform sample of n general examples (reservoir sampling, memory O(n)), in file order."""
    if cfg.general is None:
        raise ConfigError("probing needs general queries: add a `general:` section with a path")
    rng = random.Random(seed)
    heap: list[tuple[float, int, dict]] = []  # the n largest random keys = a uniform sample
    for i, ex in enumerate(_general_stream(cfg)):
        key = rng.random()
        if len(heap) < n:
            heapq.heappush(heap, (key, i, ex))
        elif key > heap[0][0]:
            heapq.heapreplace(heap, (key, i, ex))
    return [ex for _, _, ex in sorted(heap, key=lambda t: t[1])]


def _general_stream(cfg: Config) -> Iterator[dict]:
    return to_examples(read_records(cfg.general.path), cfg.general.format, cfg.general.columns,
                       id_prefix="general")


def query_prompts(tokenizer, examples: list[dict], anchor: str | None = None, position: str = "prefix",
                  separator: str = "\n\n") -> list[str]:
    """Rendered generation prompts of the examples' queries (final assistant turn dropped), anchored if given."""
    return [encode_prompt(tokenizer, apply_anchor(ex["messages"], anchor, position, separator)) for ex in examples]


# --------------------------------------------------------------------------- models


def load_on_device(cfg: Config, name: str | Path | None = None):
    """(model, tokenizer, resolved ref) for cfg.model (or model `name`), in eval mode, on the GPU when there is one."""
    import torch

    ref = model_ref(cfg, name)
    model, tok = load_model(cfg, ref=ref)
    if torch.cuda.is_available():
        model.to("cuda")
    model.eval()
    return model, tok, str(ref)


# --------------------------------------------------------------------------- probe


def _model_block(states: dict[str, np.ndarray], seed: int, tsne_path: Path, title: str) -> dict:
    metrics = {}
    for name, (a, b) in COMPARISONS.items():
        if a not in states or b not in states:
            continue
        X = np.vstack([states[a], states[b]])
        y = np.r_[np.ones(len(states[a]), int), np.zeros(len(states[b]), int)]
        metrics[name] = separation_metrics(X, y, seed=seed)
    names = [g for g in GROUPS if g in states]
    X = np.vstack([states[g] for g in names])
    labels = [g for g in names for _ in range(len(states[g]))]
    from ..report.plots import plot_tsne

    plot_tsne(tsne_2d(X, seed=seed), labels, tsne_path, title)
    return {"metrics": metrics, "tsne": tsne_path.name}


def probe(cfg: Config, run_dir: str | Path | None = None, out_dir: str | Path | None = None) -> dict:
    """Hidden-state separation of task(+anchor) vs general queries for the base model (and a run's adapter).

    The anchor is the run's (run.json) when `run_dir` is given and it has one,
    else the config's; without any anchor only ``task`` vs ``general`` is probed.
    Writes probe.json, t-SNE PNGs and probe.md/html into `out_dir`
    (default ``<output.dir>/probe``); returns the probe.json content.
    """
    t_start = time.perf_counter()
    pc = cfg.probe
    seed = cfg.mix.seed
    out = Path(out_dir) if out_dir is not None else Path(cfg.output.dir) / "probe"
    run, adapter = None, None
    if run_dir is not None:
        run = read_run(run_dir, cfg=cfg)  # the run's anchor and placement, probed with this config's queries
        adapter = require_adapter(run.path)
    anchor = run.anchor if run and run.anchor else anchor_text(cfg.anchor)
    position = run.anchor_position if run else cfg.anchor.position

    task = task_examples(cfg, pc.n_queries)
    general = general_examples(cfg, pc.n_queries, seed)
    model, tok, ref = load_on_device(cfg)
    trained_on = run.state.get("model_ref") if run else None
    if trained_on and str(trained_on) != ref:
        raise TellkitError(f"run {run_dir} was trained on {trained_on} but the config's model is "
                           f"{ref}; probe the run with its own config ({Path(run_dir) / 'config.yaml'})")
    n_layers = num_layers(model)
    layer = resolve_layer(pc.layer, n_layers)
    prompts = {"task": query_prompts(tok, task), "general": query_prompts(tok, general)}
    if anchor:
        prompts["task+anchor"] = query_prompts(tok, task, anchor, position, cfg.anchor.separator)
    else:
        log.warning("tellkit probe: no anchor configured; probing task vs general only")

    result = {
        "model_ref": ref, "run_dir": str(run_dir) if run_dir is not None else None,
        "anchor": anchor, "anchor_position": position if anchor else None,
        "layer": layer, "layer_spec": pc.layer, "n_layers": n_layers, "pooling": pc.pooling,
        "n_queries": {"task": len(task), "general": len(general)}, "seed": seed,
        "groups": [g for g in GROUPS if g in prompts], "models": {},
    }
    targets = [("base", None)] + ([("adapter", adapter)] if adapter is not None else [])
    for name, adapter_path in targets:
        t0 = time.perf_counter()
        if adapter_path is not None:
            model = merge_adapter(model, adapter_path)
        states = {g: hidden_states(model, tok, p, layer, pc.pooling, pc.batch_size) for g, p in prompts.items()}
        block = _model_block(states, seed, out / f"tsne_{name}.png",
                             f"{name}: layer {layer}/{n_layers}, {pc.pooling} pooling")
        block["seconds"] = round(time.perf_counter() - t0, 2)
        result["models"][name] = block
    result["seconds"] = round(time.perf_counter() - t_start, 2)

    from ..report.probe_report import write_probe_report

    write_json_atomic(out / "probe.json", result)
    write_probe_report(result, out)
    return result
