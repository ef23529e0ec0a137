"""Denoising trajectories: the steps of a session's last run, and the clips and picture made of them.

Each step is the clean-video estimate and the text at one noise level. The studio keeps the last
run of the sessions that ran most recently in memory only (:class:`Trajectories`); a step's clip
and the picture of every step are written when asked, in the session's ``trajectory`` folder, and
go with the run they show.
"""

from __future__ import annotations

import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uvigu.studio.store import MODE_LABELS, Take
from uvigu.videoio import write_mp4, write_trajectory_png

TRAJECTORY_PICTURE_SIDE = 128  # pixels: a frame's shorter side in trajectory_png (64 px clips twice their size)
STEPS_FOLDER = "trajectory"  # in the session's folder: a subfolder of step files per run, named by its take


@dataclass(frozen=True)
class TrajectoryFrame:
    """One step of the last run: the clean-video estimate and the text at that noise level."""

    stage: str
    sigma: float
    frames: np.ndarray  # uint8 (f, h, w, 3)
    text: str | None


@dataclass(frozen=True)
class Trajectory:
    """The steps of the run that made take ``take_id``, in order."""

    take_id: str
    steps: tuple[TrajectoryFrame, ...]


def trajectory_frames(
    stage: str, steps: list[Any] | None, still: np.ndarray | None = None
) -> list[TrajectoryFrame]:
    """A run's trajectory steps (the pipeline's ``TrajectoryStep``) as the steps of ``stage``;
    ``still`` stands in for the video while only text moves (a caption's steps)."""
    frames: list[TrajectoryFrame] = []
    for step in steps or []:
        video = step.frames if step.frames is not None else still
        if video is None:
            continue
        frames.append(TrajectoryFrame(stage, float(step.sigma), video, step.text))
    return frames


class Trajectories:
    """The trajectory of each session's last run, in memory, for the sessions that ran most recently."""

    def __init__(self) -> None:
        self._runs: OrderedDict[str, Trajectory] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sid: str) -> Trajectory | None:
        with self._lock:
            return self._runs.get(sid)

    def keep(self, sid: str, trajectory: Trajectory, session_dir: Path, max_sessions: int) -> None:
        """Keep ``trajectory`` as the session's last run, dropping the least recent session's past
        ``max_sessions``, and delete the step files of the session's earlier runs."""
        with self._lock:
            self._runs[sid] = trajectory
            self._runs.move_to_end(sid)
            while len(self._runs) > max_sessions:
                self._runs.popitem(last=False)
        # Step clips of earlier runs can no longer be asked for.
        for folder in (session_dir / STEPS_FOLDER).glob("*"):
            if folder.name != trajectory.take_id:
                shutil.rmtree(folder, ignore_errors=True)

    def forget(self, sid: str) -> None:
        with self._lock:
            self._runs.pop(sid, None)

    def forget_takes(self, sid: str, take_ids: Collection[str], session_dir: Path) -> None:
        """Forget the session's last run, and delete its step files, if it made one of ``take_ids``."""
        with self._lock:
            trajectory = self._runs.get(sid)
            if trajectory is not None and trajectory.take_id in take_ids:
                del self._runs[sid]  # its steps showed a clip that is gone
                shutil.rmtree(session_dir / STEPS_FOLDER, ignore_errors=True)


def shown_trajectory(trajectory: Trajectory | None) -> Trajectory:
    """``trajectory`` when it has steps to show; a ``ValueError`` for the visitor otherwise."""
    if trajectory is None or not trajectory.steps:
        raise ValueError("Nothing to show yet: generate or caption a clip first.")
    return trajectory


def step_clip(
    trajectory: Trajectory, index: int, session_dir: Path, *, fps: int, scale: Callable[[np.ndarray], int]
) -> tuple[Path, TrajectoryFrame]:
    """An H.264 clip of step ``index`` of ``trajectory`` (written once, enlarged ``scale(frames)``
    times), and that step."""
    if not 0 <= int(index) < len(trajectory.steps):
        raise ValueError(f"Step must be between 0 and {len(trajectory.steps) - 1}.")
    step = trajectory.steps[int(index)]
    folder = session_dir / STEPS_FOLDER / trajectory.take_id
    path = folder / f"step-{int(index):03d}.mp4"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_mp4(step.frames, path, fps=fps, scale=scale(step.frames))
    return path, step


def steps_png(trajectory: Trajectory, take: Take, session_dir: Path) -> Path:
    """Every step of ``trajectory``, the run that made ``take``, as one picture
    (``uvigu-steps-<seq>.png``, `write_trajectory_png`) titled with the take's description;
    written once, beside the run's step clips."""
    title = f"Take #{take.seq} · {MODE_LABELS[take.mode]} · seed {take.seed}"  # as the Studio tab titles it
    title += f" · {take.prompt}" if take.prompt else ""
    path = session_dir / STEPS_FOLDER / trajectory.take_id / f"uvigu-steps-{take.seq}.png"
    if not path.is_file():
        write_trajectory_png(trajectory.steps, path, side=TRAJECTORY_PICTURE_SIDE, title=title)
    return path

