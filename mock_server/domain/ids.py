"""One seeded random source for every id the mock hands out."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable


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
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def reseed(self, seed: int | None) -> None:
        self._rng.seed(seed)
