"""Training: preference data, Bradley–Terry LoRA reward models, checkpoint schedules, checkpoint
sweeps through the scoring engine, and value injection (the audit checking itself).

Needs the ``[train]`` extra (trl, peft, datasets); imported lazily by the functions that use it.
"""

from rmvalues.training.config import TrainConfig
from rmvalues.training.schedule import CheckpointSchedule

__all__ = ["CheckpointSchedule", "TrainConfig"]
