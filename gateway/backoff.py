"""The one reconnect policy: exponential backoff with full jitter, capped, reset when healthy."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]

# Full jitter spreads many meters' retries over the whole window so they never fall into
# lockstep; the cap keeps a replugged device from waiting more than a minute.
INITIAL_DELAY_S = 1.0
MAX_DELAY_S = 60.0
# A module that ran this long was healthy: its next failure starts the sequence again.
HEALTHY_RUN_S = 60.0


@dataclass(slots=True)
class Backoff:
    """Delays for successive failures of one supervised task."""

    initial_s: float = INITIAL_DELAY_S
    cap_s: float = MAX_DELAY_S
    healthy_after_s: float = HEALTHY_RUN_S
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self, ran_for_s: float) -> float:
        """The wait before the next start, given how long the failed run lasted."""
        if ran_for_s >= self.healthy_after_s:
            self.attempt = 0
        ceiling = min(self.cap_s, self.initial_s * 2.0**self.attempt)
        self.attempt += 1
        return self.rng.uniform(0.0, ceiling)

    def fatal_delay(self) -> float:
        """A near-fatal error (bad credentials, wrong device): wait the whole cap."""
        self.attempt += 1
        return self.cap_s
