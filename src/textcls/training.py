"""`textcls.training`: the class paths that configs, saved `config.yaml` files and checkpoints name
(`textcls.training.AtomicCheckpointIO`, `...FaultTolerance`, ...) keep importing from here; the code lives in
checkpointing.py and fault_tolerance.py."""

from __future__ import annotations

from textcls.checkpointing import AtomicCheckpointIO, ResumeCheckpoint
from textcls.fault_tolerance import FaultTolerance, GracefulInterrupt, ResumeDataPosition, TrainingRNG

__all__ = [
    "AtomicCheckpointIO",
    "FaultTolerance",
    "GracefulInterrupt",
    "ResumeCheckpoint",
    "ResumeDataPosition",
    "TrainingRNG",
]
