"""Session manager: one shared pipeline, one job queue, persistent and isolated sessions of takes."""

from uvigu import Cancelled
from uvigu.studio.jobs import Job, JobQueue, OutOfMemory, ProgressEvent, StudioBusy, one_torch_thread
from uvigu.studio.manager import Studio
from uvigu.studio.runs import ModelDefaults, Timeline
from uvigu.studio.settings import StudioSettings
from uvigu.studio.store import MODE_LABELS, Take, TakeStore
from uvigu.studio.textdiff import word_diff
from uvigu.studio.trajectories import Trajectory, TrajectoryFrame

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
    "one_torch_thread",
    "word_diff",
]
