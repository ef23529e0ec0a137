"""Session manager: one shared pipeline, one job queue, persistent and isolated sessions of takes."""

from uvigu import Cancelled
from uvigu.studio.jobs import Job, JobQueue, OutOfMemory, ProgressEvent, StudioBusy
from uvigu.studio.manager import ModelDefaults, Studio, Timeline, Trajectory, TrajectoryFrame
from uvigu.studio.settings import StudioSettings
from uvigu.studio.store import MODE_LABELS, Take, TakeStore
from uvigu.studio.textdiff import word_diff

__all__ = [
    "MODE_LABELS",
    "Cancelled",
    "Job",
    "ModelDefaults",
    "JobQueue",
    "OutOfMemory",
    "ProgressEvent",
    "Studio",
    "StudioBusy",
    "StudioSettings",
    "Take",
    "TakeStore",
    "Timeline",
    "Trajectory",
    "TrajectoryFrame",
    "word_diff",
]
