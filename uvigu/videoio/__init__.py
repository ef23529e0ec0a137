"""Video files in and out: MP4 / GIF / PNG writers (strips, trajectories), probing, decoding, conforming.

Frames are ``uint8`` arrays of shape ``(f, h, w, 3)`` (RGB) everywhere in this package.

Every writer is atomic (``writing``). MP4s are H.264 (libx264) / yuv420p with even dimensions and
``+faststart`` (DESIGN.md §6: plays in every browser), in BT.709 colours that the file names.
Reading (``reading``, ``conform``) goes through the ffmpeg binary that ``imageio-ffmpeg`` ships
(``ffmpeg``; no system ffmpeg needed); every problem with an input file is a ``ValueError`` a
user can act on.
"""

from .conform import ConformedVideo, conform_video, read_clip
from .reading import DecodedVideo, VideoInfo, check_video, probe_video, read_video
from .writing import write_gif, write_mp4, write_strip_png, write_trajectory_png

__all__ = [
    "ConformedVideo",
    "DecodedVideo",
    "VideoInfo",
    "check_video",
    "conform_video",
    "probe_video",
    "read_clip",
    "read_video",
    "write_gif",
    "write_mp4",
    "write_strip_png",
    "write_trajectory_png",
]
