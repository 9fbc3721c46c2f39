"""Training batches: padded examples, or packed rows with restarting position ids."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from ..data.tokenize import IGNORE


class Rows(TorchDataset):
    """Training rows in mixture order; a row is one example, or several when packed."""

    def __init__(self, data, groups: list[list[int]]):
        self.data, self.groups = data, groups

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> list[dict]:
        rows = self.data.select_columns(["input_ids", "labels"])[self.groups[i]]
        return [{"input_ids": a, "labels": b} for a, b in zip(rows["input_ids"], rows["labels"])]

    def tokens(self, lengths: np.ndarray) -> np.ndarray:
        """Real (non-pad) tokens of each row, for throughput accounting."""
        return np.array([int(lengths[g].sum()) for g in self.groups], dtype=np.int64)


def collate_padded(pad_id: int):
    def collate(batch: list[list[dict]]) -> dict[str, torch.Tensor]:
        examples = [ex for row in batch for ex in row]
        width = max(len(ex["input_ids"]) for ex in examples)
        ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, ex in enumerate(examples):
            n = len(ex["input_ids"])
            ids[i, :n] = torch.tensor(ex["input_ids"])
            labels[i, :n] = torch.tensor(ex["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


def collate_packed(pad_id: int, max_length: int):
    """One row per packed group. No attention_mask on purpose: transformers then reads the
    position-id restarts as sequence boundaries and builds a block-diagonal causal mask."""

    def collate(batch: list[list[dict]]) -> dict[str, torch.Tensor]:
        ids = torch.full((len(batch), max_length), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), max_length), IGNORE, dtype=torch.long)
        pos = torch.zeros((len(batch), max_length), dtype=torch.long)
        for i, row in enumerate(batch):
            at = 0
            for ex in row:
                n = len(ex["input_ids"])
                ids[i, at:at + n] = torch.tensor(ex["input_ids"])
                labels[i, at:at + n] = torch.tensor(ex["labels"])
                pos[i, at:at + n] = torch.arange(n)
                at += n
            pos[i, at:] = torch.arange(max_length - at)  # padding is its own (masked-out) sequence
        return {"input_ids": ids, "labels": labels, "position_ids": pos}

    return collate
