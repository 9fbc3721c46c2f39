"""Continuous-batching decode loop over a SlotCache: what `generate` runs for decoder-only models.

Per prompt it does what ``model.generate`` does (the same forward, greedy argmax
or temperature sampling, stop at an EOS id or after max_new_tokens), but:

* the token prefix shared by every prompt (chat template, system turn, a task
  preamble) is prefilled once and its KV copied into each row;
* prompts are prefilled a few at a time (similar lengths, left-padded after the
  shared prefix), and only their last positions go through the LM head;
* a row that stops frees its slot at once and the next prompt takes it, so no
  step is spent on sequences that have finished; when no prompt is left, the
  finished rows are dropped from the batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicCache

from .kvslots import SlotCache

# Prompts whose common prefix is shorter than this are prefilled whole: one extra forward is not worth it.
MIN_SHARED_PREFIX = 8
# Padded tokens per prefill forward: several prompts per forward read the weights once for all of them.
PREFILL_TOKENS = 1024


@dataclass
class _Row:
    index: int  # position of the prompt in the caller's list
    n_prompt: int
    tokens: list[int] = field(default_factory=list)


def shared_prefix_length(prompts: list[list[int]]) -> int:
    """Length of the token prefix common to all prompts, leaving at least one own token per prompt."""
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def _forward(model, seqs: list[list[int]], start: int, cache) -> torch.Tensor:
    """Last-position logits [rows, vocab] after feeding each of `seqs` (positions start, start+1, ...) into `cache`.

    Sequences of different lengths are left-padded after the `start` positions already in the cache, with those
    padding columns masked; each row's last position is its own last token.
    """
    device, width = model.device, max(map(len, seqs))
    pads = [width - len(s) for s in seqs]
    input_ids = torch.tensor([[0] * pad + s for pad, s in zip(pads, seqs)], device=device)
    positions = torch.tensor([[start] * pad + list(range(start, start + len(s))) for pad, s in zip(pads, seqs)],
                             device=device)
    mask = None
    if any(pads):
        mask = torch.tensor([[1] * start + [0] * pad + [1] * len(s) for pad, s in zip(pads, seqs)], device=device)
    return model(input_ids=input_ids, position_ids=positions, attention_mask=mask, cache=cache, use_cache=True,
                 logits_to_keep=1).logits[:, -1]


class Decoder:
    """Generates for a list of token-id prompts with `slots` sequences decoded at once.

    `pick(logits [rows, vocab]) -> token ids [rows]` chooses the next tokens; `done(row tokens) -> bool` is an
    extra per-sequence stop rule (EOS and max_new_tokens always apply). `step(input_ids, positions, cache) -> logits`
    replaces the model's forward for decode steps (lean_step.py), with the same logits.
    """

    def __init__(self, model, *, max_new_tokens: int, slots: int, eos_ids: set[int],
                 pick: Callable[[torch.Tensor], torch.Tensor], done: Callable[[list[int]], bool] | None = None,
                 step: Callable | None = None):
        self.model, self.max_new_tokens, self.slots = model, max_new_tokens, slots
        self.eos_ids, self.pick, self.done = eos_ids, pick, done
        self.forward_step = step or self._model_step
        self.n_layers = model.config.get_text_config(decoder=True).num_hidden_layers

    def run(self, prompts: list[list[int]], on_finish: Callable[[int], None] | None = None) -> list[list[int]]:
        self.results: list[list[int]] = [[] for _ in prompts]
        self.on_finish = on_finish or (lambda i: None)
        self.prompts = prompts
        self.n_prefix = shared_prefix_length(prompts) if len(prompts) > 1 else 0
        if self.n_prefix < MIN_SHARED_PREFIX:
            self.n_prefix = 0
        self.prefix_kv = self._prefill_prefix(prompts[0][: self.n_prefix]) if self.n_prefix else None
        # Longest first: later (shorter) prompts then fit the window without widening it.
        self.queue = deque(sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True))
        admitted = self._admit(self.slots)
        if not admitted:
            return self.results
        cache = SlotCache(self.n_layers)
        longest = admitted[0][1][0][0]
        cache.allocate(len(admitted), longest, longest.shape[2], right=self.max_new_tokens)
        for slot, (_, kv) in enumerate(admitted):
            cache.place(slot, kv)
        rows: list[_Row | None] = [row for row, _ in admitted]
        while rows:
            rows = self._step(cache, rows)
        return self.results

    def _prefill_prefix(self, ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        cache = DynamicCache(config=self.model.config)
        _forward(self.model, [ids], 0, cache)
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _admit(self, want: int) -> list[tuple[_Row, list]]:
        """Prefill queued prompts until `want` rows are decoding (or the queue is empty), a few per forward.

        Prompts that finish on their first token are done at once and take no slot.
        """
        admitted: list[tuple[_Row, list]] = []
        while self.queue and len(admitted) < want:
            chunk = [self.queue.popleft()]
            width = len(self.prompts[chunk[0]]) - self.n_prefix  # the queue is longest first
            while self.queue and len(admitted) + len(chunk) < want and (len(chunk) + 1) * width <= PREFILL_TOKENS:
                chunk.append(self.queue.popleft())
            admitted += [a for a in self._prefill(chunk) if a is not None]
        return admitted

    def _prefill(self, chunk: list[int]) -> list[tuple[_Row, list] | None]:
        """One forward over the prompts `chunk`, left-padded after the shared prefix; each row's first token and KV."""
        own = [self.prompts[i][self.n_prefix:] for i in chunk]
        width, p = max(map(len, own)), self.n_prefix
        cache = DynamicCache(config=self.model.config)
        if self.prefix_kv is not None:
            for layer, (k, v) in zip(cache.layers, self.prefix_kv):
                layer.update(k.expand(len(chunk), -1, -1, -1), v.expand(len(chunk), -1, -1, -1))
        first = self.pick(_forward(self.model, own, p, cache)).tolist()
        out: list[tuple[_Row, list] | None] = []
        for r, (i, o) in enumerate(zip(chunk, own)):
            pad = width - len(o)
            row = _Row(i, len(self.prompts[i]), [int(first[r])])
            if self._finished(row):
                out.append(None)
                continue
            cols = torch.cat([torch.arange(p), torch.arange(p + pad, p + width)]).to(self.model.device)
            out.append((row, [(layer.keys[r:r + 1].index_select(2, cols), layer.values[r:r + 1].index_select(2, cols))
                              for layer in cache.layers]))
        return out

    def _finished(self, row: _Row) -> bool:
        if (row.tokens[-1] in self.eos_ids or len(row.tokens) >= self.max_new_tokens
                or (self.done is not None and self.done(row.tokens))):
            self.results[row.index] = row.tokens
            self.on_finish(row.index)
            return True
        return False

    def _model_step(self, input_ids: torch.Tensor, positions: torch.Tensor, cache: SlotCache) -> torch.Tensor:
        return self.model(input_ids=input_ids, position_ids=positions, attention_mask=cache.window_mask(),
                          cache=cache, use_cache=True).logits[:, -1]

    def _step(self, cache: SlotCache, rows: list[_Row | None]) -> list[_Row | None]:
        device = self.model.device
        input_ids = torch.tensor([[r.tokens[-1] if r else 0] for r in rows], device=device)
        positions = torch.tensor([[r.n_prompt + len(r.tokens) - 1 if r else 0] for r in rows], device=device)
        cache.advance(1)
        logits = self.forward_step(input_ids, positions, cache)
        cache.settle()
        picked = self.pick(logits).tolist()
        freed = []
        for slot, row in enumerate(rows):
            if row is None:
                continue
            row.tokens.append(picked[slot])
            if self._finished(row):
                rows[slot] = None
                freed.append(slot)
        for slot, (row, kv) in zip(freed, self._admit(len(freed))):  # refill the freed slots
            rows[slot] = row
            cache.place(slot, kv)
        live = [s for s, r in enumerate(rows) if r is not None]
        if len(live) < len(rows) and not self.queue:
            remaining = self.max_new_tokens - min(len(rows[s].tokens) for s in live) + 1 if live else 0
            if live:
                cache.keep_rows(torch.tensor(live, device=device), right=remaining)
            rows = [rows[s] for s in live]
        return rows
