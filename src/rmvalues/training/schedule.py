"""Checkpoint schedules: step 0 (before any update), powers of two, every N steps, the last step.

Powers of two resolve the fast early changes of training dynamics (paper Fig 4a, 5); a fixed
interval covers the rest evenly.
"""

from __future__ import annotations

from dataclasses import dataclass

from rmvalues.errors import InputError


@dataclass(frozen=True)
class CheckpointSchedule:
    """Which optimizer steps get a checkpoint."""

    powers_of_two: bool = True
    every: int = 0  # 0 = no fixed interval
    include_zero: bool = True
    include_last: bool = True

    def __post_init__(self) -> None:
        if self.every < 0:
            raise InputError(f"checkpoint interval must be >= 0 (got {self.every}); 0 turns it off.")

    def __contains__(self, step: int) -> bool:
        return self.wants(step, None)

    def wants(self, step: int, total_steps: int | None) -> bool:
        """Whether ``step`` is saved in a run of ``total_steps`` (None: unknown length)."""
        if step < 0 or (total_steps is not None and step > total_steps):
            return False
        if step == 0:
            return self.include_zero
        if self.include_last and total_steps is not None and step == total_steps:
            return True
        if self.powers_of_two and step & (step - 1) == 0:
            return True
        return bool(self.every) and step % self.every == 0

    def steps(self, total_steps: int) -> list[int]:
        """All checkpoint steps of a run of ``total_steps`` optimizer steps, ascending."""
        if total_steps < 0:
            raise InputError(f"total steps must be >= 0 (got {total_steps}).")
        found: set[int] = {0} if self.include_zero else set()
        if self.powers_of_two:
            power = 1
            while power <= total_steps:
                found.add(power)
                power *= 2
        if self.every:
            found.update(range(self.every, total_steps + 1, self.every))
        if self.include_last and total_steps > 0:
            found.add(total_steps)
        return sorted(found)


def reference_checkpoint_steps(schedule: CheckpointSchedule, total_steps: int) -> list[int]:
    """Obviously-correct schedule: test every step one by one."""
    return [s for s in range(total_steps + 1) if schedule.wants(s, total_steps)]
