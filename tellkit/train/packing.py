"""Pack variable-length examples into fixed-length rows without cross-example attention.

Examples are placed first-fit into a small window of open rows, so the
mixture's shuffled order is kept up to a few positions while rows fill to
~98%. Each example keeps its own position ids (restarting at 0); with no
attention mask, transformers turns those restarts into a block-diagonal
causal mask, so no token ever attends across examples.
"""

from __future__ import annotations

import numpy as np


def pack(lengths: np.ndarray, max_length: int, open_rows: int = 8) -> list[list[int]]:
    """Group example positions into rows of at most max_length tokens; rows are in closing order."""
    rows: list[list[int]] = []
    open_: list[tuple[int, list[int]]] = []  # (used tokens, member positions)
    for i, n in enumerate(int(x) for x in lengths):
        for j, (used, members) in enumerate(open_):
            if used + n <= max_length:
                members.append(i)
                open_[j] = (used + n, members)
                break
        else:
            if len(open_) == open_rows:  # close the fullest row to make room
                k = max(range(len(open_)), key=lambda j: open_[j][0])
                rows.append(open_.pop(k)[1])
            open_.append((n, [i]))
    rows.extend(members for _, members in open_)
    return rows


def efficiency(lengths: np.ndarray, rows: list[list[int]], max_length: int) -> float:
    """Real tokens / token slots of the packed rows."""
    return float(np.sum(lengths)) / (len(rows) * max_length) if rows else 0.0
