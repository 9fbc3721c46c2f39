"""The methods a comparison runs, one row each. What a method's mixture holds and how a compare, a
sweep and the reports treat it are read from its row, so adding a method (or another name for one) is
a row here plus its tests; the mixture builder needs new code only for a new kind of mixture.

  tell          anchored task data + mix.ratio x its tokens of general data
  sft           the same task data alone (no anchor), same epochs: fewer steps than tell
  sft+anchor    the same, with the anchor (tell's mixture at ratio 0)
  sft-matched   task data repeated (whole passes + a seeded partial pass) to its seed's tell run's
                training tokens, so it gets the same compute: the control for "TELL only wins
                because it trains longer"
  tell-no-anchor  tell's mixture without the anchor (the same task examples, general data at mix.ratio x
                their unanchored tokens): the ablation of TELL's first mechanism, the anchor
  general-only  tell's general tokens, no task data
  base          the untrained model (no adapter, no anchor), evaluated once

`tell` itself is the method every other one is measured against (a compare's differences, a
sweep's multiplier), so it is named where that is meant.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Method:
    name: str
    task: bool = True  # trains on the task data
    anchored: bool = False  # its task examples carry the anchor
    general: bool = False  # mixes in mix.ratio x the task tokens of general data
    matched: bool = False  # task data repeated to its seed's tell run's training tokens: needs that run
    trains: bool = True  # an adapter is trained (False: the untrained model, evaluated once)
    baseline: bool = False  # a report's outcome weighs tell against it
    same_as_tell: str = ""  # what it shares with tell's compute (the report's "compute-matched" column)
    ablation: bool = False  # a study's question, not a user's choice: only run when compare.methods names it

    @property
    def ratio_free(self) -> bool:
        """Its mixture does not grow with mix.ratio: a sweep runs it once per scale and seed."""
        return self.trains and not (self.general or self.matched)

    @property
    def by_ratio(self) -> bool:
        """Its cells differ by ratio (tell, tell-no-anchor, sft-matched, general-only)."""
        return self.trains and not self.ratio_free

    @property
    def tell_at_ratio_0(self) -> bool:
        """Anchored task data alone is tell's mixture at ratio 0: a sweep reuses that run."""
        return self.trains and self.task and self.anchored and not (self.general or self.matched)

    def mixture_tokens(self, task_tokens: int, ratio: float) -> float:
        """The tokens its mixture will hold, known before anything trains (a sweep's compute budget)."""
        if not self.trains:
            return 0
        return ((1 if self.task else 0) + (ratio if self.general or self.matched else 0)) * task_tokens


ROWS = (
    Method("tell", anchored=True, general=True),
    Method("sft", baseline=True),
    Method("sft+anchor", anchored=True),
    Method("sft-matched", matched=True, baseline=True,
           same_as_tell="same training tokens as tell (task data repeated); its steps are shown beside tell's"),
    Method("tell-no-anchor", general=True, ablation=True,
           same_as_tell="tell's examples and ratio without the anchor (so a little fewer tokens: the anchor's)"),
    Method("general-only", task=False, general=True,
           same_as_tell="same general tokens as tell, no task data"),
    Method("base", task=False, trains=False),
)
METHODS = {m.name: m for m in ROWS}
NAMES = tuple(METHODS)  # what compare/sweep methods may name, in the order compare runs them
DEFAULT_COMPARE = tuple(m.name for m in ROWS if not m.ablation)  # compare.methods' default
TRAINED = tuple(m.name for m in ROWS if m.trains)  # what mix.method may name


def require_anchor(method: str, anchor: str | None) -> None:
    """An anchored method without an anchor is a config error (validation and mixing both ask)."""
    if METHODS[method].anchored and anchor is None:
        raise ConfigError(f"mix.method={method} needs an anchor: set anchor.text or anchor.file")


def require_tell(methods: list[str], key: str) -> None:
    """A method matched to tell's compute needs tell in the same compare or sweep."""
    for name in methods:
        if METHODS[name].matched and "tell" not in methods:
            raise ConfigError(f"{key} has {name} but not tell: {name} copies tell's compute")


def alone() -> str:
    """The methods a single run may use ("tell, sft, ... or general-only"): all trained ones but the matched."""
    names = [m.name for m in ROWS if m.trains and not m.matched]
    return ", ".join(names[:-1]) + " or " + names[-1]
