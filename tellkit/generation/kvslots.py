"""A KV cache of decode slots: preallocated, refillable row by row, rows droppable.

transformers' DynamicCache grows by ``torch.cat`` at every step, which copies the
whole cache once per layer and token (about 10% of a batch-8 decode step of
SmolLM2 here). This cache writes each step in place into a buffer with spare
room on both sides and hands the attention a view of the live window, so the
keys each row attends to, their order and their masking are those of the
left-padded DynamicCache layout that ``model.generate`` uses.

Layout: row r holds [masked columns | its tokens], right-aligned at the shared
end of the window. A finished row's slot is refilled by writing the next
prompt's KV right-aligned at the end and masking the rest of the row; columns
that every row masks are dropped from the left of the window. Buffers start
zeroed so masked positions are finite (a zero attention weight times a NaN would
still be NaN). The padding mask lives here too, in the same coordinates.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer


def supports_slots(model) -> bool:
    """True when every decoder layer keeps a plain full-attention KV (no sliding window, no recurrent state)."""
    try:
        layers = DynamicCache(config=model.config).layers
    except Exception:  # configs transformers cannot turn into a cache: leave them to model.generate
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


class SlotLayer(DynamicLayer):
    """One layer's keys and values in a [rows, heads, capacity, dim] buffer; the window is the owner's [start, end)."""

    def __init__(self, owner: SlotCache):
        super().__init__()
        self.owner = owner
        self.k_buf = self.v_buf = None

    def allocate(self, rows: int, heads: int, dim: int, capacity: int, like: torch.Tensor) -> None:
        self.k_buf = torch.zeros(rows, heads, capacity, dim, dtype=like.dtype, device=like.device)
        self.v_buf = torch.zeros_like(self.k_buf)
        self.device, self.is_initialized = like.device, True

    def refresh(self) -> None:
        self.keys = self.k_buf[:, :, self.owner.start: self.owner.end]
        self.values = self.v_buf[:, :, self.owner.start: self.owner.end]

    def update(self, key_states, value_states, *args, **kwargs):
        # SlotCache.advance has already opened this forward's columns at the right end of the window.
        n, end = key_states.shape[-2], self.owner.end
        self.k_buf[:, :, end - n: end] = key_states
        self.v_buf[:, :, end - n: end] = value_states
        return self.keys, self.values

    def get_seq_length(self) -> int:
        # The mask code asks for the past length; the window already holds this forward's columns.
        return self.owner.end - self.owner.start - self.owner.pending


class SlotCache(Cache):
    """The decode batch's cache: call ``advance(n)`` before a forward of n new tokens per row, ``settle()`` after."""

    def __init__(self, n_layers: int):
        super().__init__(layers=[SlotLayer(self) for _ in range(n_layers)])
        self.start = self.end = self.pending = 0
        self.mask: torch.Tensor | None = None  # [rows, capacity]: 1 where a row has a real token

    @property
    def rows(self) -> int:
        return self.mask.shape[0]

    @property
    def length(self) -> int:
        return self.end - self.start

    def capacity(self) -> int:
        return self.mask.shape[1]

    def window_mask(self) -> torch.Tensor:
        return self.mask[:, self.start: self.end]

    def allocate(self, rows: int, like: torch.Tensor, length: int, right: int) -> None:
        """Zeroed buffers for `rows` slots with a window of `length` columns and `right` free columns after it."""
        heads, dim = like.shape[1], like.shape[3]
        for layer in self.layers:
            layer.allocate(rows, heads, dim, length + right, like)
        self.mask = torch.zeros(rows, length + right, dtype=torch.long, device=like.device)
        self.start, self.end = 0, length
        self._refresh()

    def _refresh(self) -> None:
        for layer in self.layers:
            layer.refresh()

    def _reallocate(self, rows: torch.Tensor | None, left: int, right: int) -> None:
        """Copy the window (of `rows`, or all rows) into new buffers with `left` columns before it and `right` after."""
        pick = (lambda t: t) if rows is None else (lambda t: t.index_select(0, rows))
        length = self.length
        for layer in self.layers:
            k, v = pick(layer.keys), pick(layer.values)
            layer.allocate(k.shape[0], k.shape[1], k.shape[3], left + length + right, k)
            layer.k_buf[:, :, left: left + length] = k
            layer.v_buf[:, :, left: left + length] = v
        old = pick(self.window_mask())
        self.mask = torch.zeros(old.shape[0], left + length + right, dtype=old.dtype, device=old.device)
        self.mask[:, left: left + length] = old
        self.start, self.end = left, left + length
        self._refresh()

    def advance(self, n: int) -> None:
        """Open n new columns on the right for every row (real tokens from now on)."""
        if self.end + n > self.capacity():
            self._reallocate(None, left=0, right=max(n, self.length // 2 + 64))
        self.end += n
        self.pending = n
        self.mask[:, self.end - n: self.end] = 1
        self._refresh()

    def settle(self) -> None:
        self.pending = 0

    def place(self, row: int, kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Put one prompt's per-layer (key, value), each [1, heads, L, dim], right-aligned into slot `row`."""
        length = kv[0][0].shape[2]
        if length > self.length:  # longer than the window: widen it on the left (columns masked for other rows)
            grow = length - self.length
            if self.start < grow:
                self._reallocate(None, left=grow, right=self.capacity() - self.end)
            self.start -= grow
            self.mask[:, self.start: self.start + grow] = 0
            self._refresh()
        for layer, (k, v) in zip(self.layers, kv):
            layer.k_buf[row, :, self.end - length: self.end] = k[0]
            layer.v_buf[row, :, self.end - length: self.end] = v[0]
        self.mask[row, self.start: self.end] = 0
        self.mask[row, self.end - length: self.end] = 1
        self.trim()

    def trim(self) -> None:
        """Drop window columns on the left that every row masks."""
        used = self.window_mask().any(0).nonzero()
        if len(used) and int(used[0]) > 0:
            self.start += int(used[0])
            self._refresh()

    def keep_rows(self, rows: torch.Tensor, right: int) -> None:
        """Keep only `rows` (finished slots stop costing compute), with `right` free columns for the steps left."""
        self._reallocate(rows, left=0, right=right)
        self.trim()
