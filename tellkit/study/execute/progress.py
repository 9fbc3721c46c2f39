"""One progress line for a whole sweep or compare: cells done / running / left, with an ETA.

Cells write their own output (training bars, warnings) to log/CELL.log, so the terminal keeps this one
line however many cells run at once. The ETA is tqdm's, from the rate at which cells finish (with N
workers that rate already counts the N cells in flight).
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


class Progress:
    def __init__(self, todo: list[str], desc: str, log_dir):
        self.total, self.running, self.failed = len(todo), set(), 0
        tqdm.write(f"{desc}: {self.total} cells to run; each cell's output goes to {log_dir}/CELL.log",
                   file=sys.stderr)
        self.bar = tqdm(total=self.total, desc=desc, unit="cell", file=sys.stderr, dynamic_ncols=True)
        self._show()

    def _show(self, finishing: int = 0) -> None:
        """Set the counts; `finishing`: a cell the next bar.update(1) counts (it redraws once, with them)."""
        done = self.bar.n + finishing
        left = self.total - done - len(self.running) - self.failed
        where = f" ({', '.join(sorted(self.running)[:2])}{', …' if len(self.running) > 2 else ''})" \
            if self.running else ""
        failed = f", failed {self.failed}" if self.failed else ""
        self.bar.set_postfix_str(f"done {done}, running {len(self.running)}{where}, left {left}{failed}",
                                 refresh=not finishing)

    def start(self, name: str) -> None:
        self.running.add(name)
        self._show()

    def set_running(self, names) -> None:
        """Backends that learn about starts only from the cells' logs (Ray) report the running set."""
        self.running = set(names)
        self._show()

    def done(self, name: str) -> None:
        self.running.discard(name)
        self._show(finishing=1)
        self.bar.update(1)

    def note(self, text: str) -> None:
        tqdm.write(text, file=sys.stderr)

    def retry(self, name: str, why: str) -> None:
        self.running.discard(name)
        tqdm.write(f"cell {name}: {why}; running it again (it resumes from its last checkpoint)", file=sys.stderr)
        self._show()

    def fail(self, name: str, why: str) -> None:
        self.running.discard(name)
        self.failed += 1
        tqdm.write(f"cell {name} failed: {why}", file=sys.stderr)
        self._show()

    def close(self) -> None:
        self.bar.close()
