"""Training: preference data, Bradley–Terry LoRA reward models, checkpoint schedules, checkpoint
sweeps through the scoring engine, and value injection (the audit checking itself).

Needs the ``[train]`` extra (trl, peft, datasets); those and torch are imported only by the
functions that use them, so importing this package is cheap. Sweeps:
``rmvalues.training.sweep.sweep``, a plan of (checkpoint, prompt) units (:mod:`rmvalues.runs.sweep`;
the function is not re-exported here, so the module name stays the module).
"""

from rmvalues.training.config import TrainConfig
from rmvalues.training.data import PreferenceData, load_preference_data
from rmvalues.training.injection import InjectionResult, injection_split, run_injection
from rmvalues.training.lm_injection import LMInjectionConfig, validate_metrics
from rmvalues.training.schedule import CheckpointSchedule
from rmvalues.training.sweep import CheckpointModels, merge_checkpoint
from rmvalues.training.trainer import TrainResult, train_reward_model

__all__ = [
    "CheckpointModels", "CheckpointSchedule", "InjectionResult", "LMInjectionConfig",
    "PreferenceData", "TrainConfig", "TrainResult", "injection_split", "load_preference_data",
    "merge_checkpoint", "run_injection", "train_reward_model", "validate_metrics",
]
