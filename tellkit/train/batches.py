"""Training micro-batches: the plan's groups of examples, collated packed (one padding-free row) or padded.

A micro-batch is `train.batch_size` consecutive examples in mixture order (tellkit/train/plan.py),
so the step count does not depend on packing. Packed, the examples are concatenated into one row
with no padding at all: position ids restart at 0 for each example, and `cu_seq_lens_q/k` (the
flash-attention varlen convention) tell the attention where each example starts, so no token ever
attends across examples (tellkit/train/attention.py; flash_attention_2 reads the same keys).

Labels are shifted here, per example (`shift_labels`: the token each position must predict, -100
where none): a packed row's last token of one example must not learn to predict the next example's
first token. `token_source` marks each position task (1) or general (0) for the per-source loss.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from ..data.tokenize import IGNORE
from ..mix.mixture import TASK


class MicroBatches(TorchDataset):
    """Item i = the examples of micro-batch i (rows of `data`), each with its source."""

    def __init__(self, data, groups: list[list[int]], is_task: np.ndarray):
        self.data, self.groups, self.is_task = data.select_columns(["input_ids", "labels"]), groups, is_task

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> list[dict]:
        g = self.groups[i]
        rows = self.data[g]
        return [{"input_ids": a, "labels": b, "task": int(self.is_task[j])}
                for a, b, j in zip(rows["input_ids"], rows["labels"], g)]

    @classmethod
    def of_mixture(cls, mixture, groups: list[list[int]]) -> "MicroBatches":
        return cls(mixture.dataset(), groups, (mixture.order[:, 0] == TASK).astype(np.int8))

    @classmethod
    def dev(cls, mixture) -> "MicroBatches | None":
        """The held-out task examples, one per item (dev loss)."""
        rows = [int(i) for i in mixture.dev_rows]
        if not rows:
            return None
        return cls(mixture.task.select(rows), [[i] for i in range(len(rows))], np.ones(len(rows), dtype=np.int8))


def _shifted(labels: list[int]) -> list[int]:
    return labels[1:] + [IGNORE]


def collate_packed(batch: list[list[dict]]) -> dict:
    """The micro-batch (one item, per_device_train_batch_size=1) as one padding-free row."""
    examples = [ex for item in batch for ex in item]
    lengths = [len(ex["input_ids"]) for ex in examples]
    ids = torch.tensor([t for ex in examples for t in ex["input_ids"]])[None]
    cu = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int32)
    return {
        "input_ids": ids,
        "labels": torch.tensor([t for ex in examples for t in ex["labels"]])[None],  # the Trainer's label check
        "shift_labels": torch.tensor([t for ex in examples for t in _shifted(ex["labels"])])[None],
        "position_ids": torch.cat([torch.arange(n) for n in lengths])[None],
        "token_source": torch.tensor([ex["task"] for ex, n in zip(examples, lengths) for _ in range(n)],
                                     dtype=torch.int8)[None],
        "cu_seq_lens_q": cu,
        "cu_seq_lens_k": cu,
        "max_length_q": max(lengths), "max_length_k": max(lengths),
    }


def collate_padded(pad_id: int):
    """The micro-batch's examples padded (right) to the longest of them, with an attention mask."""

    def collate(batch: list[list[dict]]) -> dict[str, torch.Tensor]:
        examples = [ex for item in batch for ex in item]
        width = max(len(ex["input_ids"]) for ex in examples)
        ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        shift = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        source = torch.zeros((len(examples), width), dtype=torch.int8)
        for i, ex in enumerate(examples):
            n = len(ex["input_ids"])
            ids[i, :n] = torch.tensor(ex["input_ids"])
            labels[i, :n] = torch.tensor(ex["labels"])
            shift[i, :n] = torch.tensor(_shifted(ex["labels"]))
            mask[i, :n] = 1
            source[i, :n] = ex.get("task", 0)  # evaluation batches carry no source
        return {"input_ids": ids, "labels": labels, "shift_labels": shift, "attention_mask": mask,
                "token_source": source}

    return collate
