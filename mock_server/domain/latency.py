"""Durations drawn from a distribution (fixed, uniform, lognormal or recorded) with a seed."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

MAX_MS = 365 * 24 * 3600 * 1000
MAX_SAMPLES = 1_000_000


class DistKind(StrEnum):
    FIXED = "fixed"
    UNIFORM = "uniform"
    LOGNORMAL = "lognormal"
    RECORDED = "recorded"


SYNTAX = "fixed:S, uniform:LOW:HIGH, lognormal:MEDIAN:SIGMA (seconds) or recorded:FILE"


@dataclass(frozen=True, slots=True)
class Distribution:
    """`a`, `b`: seconds (fixed: a; uniform: a..b; lognormal: median a, sigma b);
    `samples`: the recorded durations (ms) drawn from, each equally likely."""

    kind: DistKind
    a: float = 0.0
    b: float = 0.0
    samples: tuple[int, ...] = ()

    def draw_ms(self, rng: random.Random) -> int:
        if self.kind is DistKind.FIXED:
            value = self.a * 1000
        elif self.kind is DistKind.UNIFORM:
            value = rng.uniform(self.a, self.b) * 1000
        elif self.kind is DistKind.LOGNORMAL:
            value = rng.lognormvariate(math.log(self.a), self.b) * 1000
        else:
            value = rng.choice(self.samples)
        return max(0, min(MAX_MS, round(value)))

    def sampler(self, seed: int | None, stream: str) -> Callable[[], int]:
        """A draw function of its own random stream: `stream` keeps the phases independent,
        so that a fixed seed gives the same durations whatever else is drawn."""
        rng = random.Random(None if seed is None else f"{seed}:{stream}")
        return lambda: self.draw_ms(rng)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds; expected {SYNTAX}") from None
    if not math.isfinite(value) or value < 0 or value * 1000 > MAX_MS:
        raise ValueError(f"{text!r}: expected seconds in [0, {MAX_MS // 1000}]")
    return value


def parse(text: str, recorded: Callable[[str], Sequence[int]]) -> Distribution:
    """`fixed:2`, `uniform:1:3`, `lognormal:2:0.5`, `recorded:FILE`; ValueError says why not.

    `recorded(path)` gives the recorded durations (ms) of the phase the option is about."""
    kind_text, _, rest = text.partition(":")
    try:
        kind = DistKind(kind_text)
    except ValueError:
        raise ValueError(f"unknown distribution {kind_text!r}; expected {SYNTAX}") from None
    if kind is DistKind.RECORDED:
        if not rest:
            raise ValueError("recorded:FILE needs the recording's path")
        samples = tuple(recorded(rest))[:MAX_SAMPLES]
        if not samples:
            raise ValueError(f"{rest}: the recording holds no duration of this phase")
        return Distribution(kind, samples=samples)
    args = [_seconds(p) for p in rest.split(":")] if rest else []
    wanted = 1 if kind is DistKind.FIXED else 2
    if len(args) != wanted:
        raise ValueError(f"{kind.value} takes {wanted} number(s): {SYNTAX}")
    if kind is DistKind.UNIFORM and args[0] > args[1]:
        raise ValueError(f"uniform:LOW:HIGH with LOW {args[0]:g} above HIGH {args[1]:g}")
    if kind is DistKind.LOGNORMAL and (args[0] <= 0 or args[1] > 10):
        raise ValueError("lognormal:MEDIAN:SIGMA needs MEDIAN > 0 and SIGMA in [0, 10]")
    return Distribution(kind, args[0], args[1] if len(args) > 1 else 0.0)
