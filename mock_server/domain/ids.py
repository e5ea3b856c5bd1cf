"""One seeded random source for every id the mock hands out."""

from __future__ import annotations

import random
from collections.abc import Callable

# What uuid.UUID(version=4) does to the 128 random bits: variant RFC 4122, version 4.
_V4_KEEP = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_V4_SET = (0x8000 << 48) | (4 << 76)


class IdSource:
    """Task, session, video and request ids; a fixed seed gives the same sequence every run."""

    __slots__ = ("_rng",)

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def numeric(self) -> str:
        """An 18-digit numeric id, the shape the real service uses."""
        return str(self._rng.randrange(10**17, 10**18))

    def unused_numeric(self, used: Callable[[str], bool]) -> str:
        """A numeric id for which `used` is false: a durable store reopened with the same seed
        replays the sequence, and ids it already holds are skipped rather than handed out again.
        """
        while used(candidate := self.numeric()):
            pass
        return candidate

    def request_id(self) -> str:
        """`str(uuid.UUID(int=getrandbits(128), version=4))`, formatted without the UUID object
        (a third of the cost: this runs once per request)."""
        n = (self._rng.getrandbits(128) & _V4_KEEP) | _V4_SET
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def reseed(self, seed: int | None) -> None:
        self._rng.seed(seed)
