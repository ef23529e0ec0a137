"""The pipeline's inputs: the range of every argument a user passes, its default and its check.

Each check returns the value as the pipeline uses it or raises a ValueError that names the
argument, its range and what was given — what `UniViGUPipeline`'s public tasks show their callers
(the CLI prints it, the studio shows it). Defaults the model's config holds (caption steps,
re-read and check settings) are read from it here, so a caption call's whole setting is one
`CaptionSettings`. A clip given as a file or an array is brought to the model's size by
`prepare_video`, with notes on what it changed. Where the model runs is `check_device`'s.
"""

from __future__ import annotations

import functools
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .models.tokenizer import count_tokens, unknown_words

logger = logging.getLogger(__name__)

VideoInput = np.ndarray | str | Path
MAX_SEED = 2**31 - 1
MAX_STEPS = 1000
MAX_GUIDANCE = 30.0
MAX_TEMPERATURE = 10.0  # caption temperature; above a few the draws are uniform noise
MAX_REREAD = 8  # re-read passes after a caption; past one or two they change little
MAX_REREAD_PERIOD = 16  # copies per re-read pass (its batch size)
MAX_VERIFY_WEIGHT = 1e6  # past a few thousand the text's probabilities no longer count
MAX_VERIFY_DRAWS = 8  # noise draws of the clip per candidate caption (the check's batch: captions × draws)
MAX_VERIFY_TEXTS = 64  # candidate captions a check may judge
MAX_BEST_OF = 16  # takes of one best-of-N generation (each a generation and a caption)


def prompt_tokens(tokenizer, text: str) -> tuple[str, int]:
    """``text`` as the tasks read a prompt — its whitespace collapsed — and its length in tokens,
    which ``check_prompt`` limits (and the studio's counter shows)."""
    text = " ".join(text.split())
    return text, count_tokens(tokenizer, text)


def check_prompt(tokenizer, prompt: str, max_tokens: int, name: str = "prompt") -> str:
    """``prompt`` with its whitespace collapsed; an error when it is not text, is empty or is longer
    than ``max_tokens``; a logged warning for words the tokenizer does not know (the record carries
    them as ``unknown_words``, for a front end that says so itself to filter it)."""
    if not isinstance(prompt, str):
        raise ValueError(f"the {name} must be text, got {type(prompt).__name__}.")
    prompt, n = prompt_tokens(tokenizer, prompt)
    if not prompt:
        raise ValueError(f"the {name} is empty: describe the clip, e.g. 'a red circle moving right'.")
    if n > max_tokens:
        raise ValueError(f"the {name} is {n} tokens long; this model reads at most {max_tokens}.")
    unknown = unknown_words(tokenizer, prompt)
    if unknown:
        logger.warning("words the model does not know: %s", ", ".join(unknown), extra={"unknown_words": unknown})
    return prompt


def check_guidance(guidance: float | None, default: float, name: str = "guidance_scale") -> float:
    guidance = default if guidance is None else guidance
    number = isinstance(guidance, (int, float, np.integer, np.floating)) and not isinstance(guidance, bool)
    if not number or not 0.0 <= guidance <= MAX_GUIDANCE:
        raise ValueError(f"{name} must be between 0 and {MAX_GUIDANCE:g}, got {guidance!r}.")
    return float(guidance)


def check_steps(steps: int | None, default: int) -> int:
    return whole_in_range(default if steps is None else steps, "num_inference_steps", 1, MAX_STEPS)


def check_best_of(best_of: int) -> int:
    """Takes of a best-of-N generation: a whole number from 1 (a plain generation) to MAX_BEST_OF."""
    return whole_in_range(best_of, "best_of", 1, MAX_BEST_OF, "a whole number of takes")


def check_judge_at(judge_at: float) -> float:
    """The share of a take's denoising steps after which best-of-N judges it, in (0, 1] (1: the
    finished take)."""
    return share_of_one(judge_at, "judge_at", " (the share of a take's steps made before it is judged)")


def check_judge_steps(judge_steps: int) -> int:
    """Steps of the quick caption best-of-N judges a take by; 0: the full caption at its defaults."""
    return whole_in_range(judge_steps, "judge_steps", 0, MAX_STEPS,
                          "a whole number of caption steps (0: the caption at its defaults)")


def check_strength(strength: float) -> float:
    """An edit's start level, in (0, 1]."""
    return share_of_one(strength, "strength")


def check_seed(seed: int | None) -> int:
    """``seed``, or a fresh random one when it is None (the result reports it, so a take can be redone)."""
    if seed is None:
        return secrets.randbelow(MAX_SEED + 1)
    return whole_in_range(seed, "seed", 0, MAX_SEED)


@dataclass(frozen=True)
class CaptionSettings:
    """One caption call's settings, checked, with the model's defaults filled in
    (`UniViGUPipeline.caption` documents each)."""

    steps: int
    temperature: float
    reread: int
    reread_threshold: float
    reread_period: int
    verify_weight: float
    verify_max_texts: int
    verify_draws: int


def caption_settings(
    config,
    *,
    num_inference_steps: int | None = None,
    temperature: float | None = None,
    reread: int | None = None,
    reread_threshold: float | None = None,
    reread_period: int | None = None,
    verify_weight: float | None = None,
    verify_max_texts: int | None = None,
    verify_draws: int | None = None,
) -> CaptionSettings:
    """The caption arguments as given, each None replaced by the pipeline ``config``'s value, checked."""

    def given(value, config_name: str):
        return getattr(config, config_name) if value is None else value

    return CaptionSettings(
        steps=check_steps(num_inference_steps, config.caption_steps),
        temperature=number_in_range(given(temperature, "text_temperature"), "temperature", 0.0, MAX_TEMPERATURE),
        reread=whole_in_range(given(reread, "caption_reread"), "reread", 0, MAX_REREAD, "a whole number of passes"),
        reread_threshold=number_in_range(given(reread_threshold, "caption_reread_threshold"), "reread_threshold",
                                         0.0, 1.0, "a probability"),
        reread_period=whole_in_range(given(reread_period, "caption_reread_period"), "reread_period", 2,
                                     MAX_REREAD_PERIOD),
        verify_weight=number_in_range(given(verify_weight, "caption_verify_weight"), "verify_weight", 0.0,
                                      MAX_VERIFY_WEIGHT),
        verify_max_texts=whole_in_range(given(verify_max_texts, "caption_verify_max_texts"), "verify_max_texts", 2,
                                        MAX_VERIFY_TEXTS, "a whole number of captions (a word needs two)"),
        verify_draws=whole_in_range(given(verify_draws, "caption_verify_draws"), "verify_draws", 1,
                                    MAX_VERIFY_DRAWS, "a whole number of noise draws"),
    )


def prepare_video(video: VideoInput, config, start_s: float = 0.0, info=None) -> tuple[np.ndarray, list[str]]:
    """A clip (a video file path or uint8 frames (f, h, w, 3)) at the size of the pipeline
    ``config`` — frames, fps, height, width — as uint8 (f, h, w, 3), and notes on what was changed
    to fit; a file's clip is taken from ``start_s`` seconds in (``info``: the file's
    ``probe_video``, when the caller has it)."""
    from .videoio import conform_video, read_clip

    if isinstance(video, (str, Path)):
        conformed = read_clip(video, num_frames=config.num_frames, fps=config.fps, height=config.height,
                              width=config.width, start_s=start_s, info=info)
    elif isinstance(video, np.ndarray):
        if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] == 0:
            raise ValueError(
                f"a clip must be uint8 frames shaped (frames, height, width, 3), got {video.dtype} {video.shape}."
            )
        conformed = conform_video(video, float(config.fps), num_frames=config.num_frames, target_fps=config.fps,
                                  height=config.height, width=config.width)
    else:
        raise ValueError(f"a clip must be a video file path or a uint8 array, got {type(video).__name__}.")
    return np.ascontiguousarray(conformed.frames), list(conformed.notes)


# The precisions the denoiser can compute in, by the names the command line and the studio take.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16"}
# CPU features that compute bfloat16 matrix products natively (Intel AMX, AVX-512 BF16, as Linux
# names them); without them torch emulates bfloat16, slower than float32.
_BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def check_dtype(dtype: str | torch.dtype | None, device: torch.device | str | None = None) -> torch.dtype:
    """The precision of the denoiser's weights: ``float32`` (or None; the default), ``bfloat16``
    (``fp32``/``bf16`` too) or ``auto``, the faster of the two where it costs nothing (`auto_dtype`
    for ``device``, default the CPU). Its norms, modulation tables and timestep embedder stay
    float32 (``_keep_in_fp32_modules``), as diffusers loads a model in low precision. Either of
    those torch dtypes is returned as it is."""
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    name = "float32" if dtype is None else str(dtype).strip().lower()
    name = DTYPE_ALIASES.get(name, name)
    if name == "auto":
        return auto_dtype(device)
    if name not in DTYPES:
        raise ValueError(f"dtype must be float32, bfloat16 (fp32, bf16) or auto, got {dtype!r}.")
    return DTYPES[name]


def auto_dtype(device: torch.device | str | None = None) -> torch.dtype:
    """bfloat16 where ``device`` computes it natively — a GPU of compute capability 8 or more
    (Ampere on; not a T4 or V100, which emulate it), a CPU with AMX or AVX-512 BF16
    (`cpu_computes_bf16`) — else float32. On the shipped model bf16 names the same objects as
    float32 and, on such a CPU, generates in about three quarters of the time (docs/BENCHMARKS.md);
    elsewhere it would be emulated, and slower."""
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda":
        fast = torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    else:
        fast = device.type == "cpu" and cpu_computes_bf16()
    return torch.bfloat16 if fast else torch.float32


@functools.cache
def cpu_computes_bf16() -> bool:
    """Whether this machine's CPU computes bfloat16 matrix products natively (`lists_bf16_flags` of
    /proc/cpuinfo; False where there is none to read)."""
    try:
        return lists_bf16_flags(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        return False


def lists_bf16_flags(cpuinfo: str) -> bool:
    """Whether a /proc/cpuinfo text lists, among a CPU's ``flags``, one of ``_BF16_CPU_FLAGS``."""
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags")
             for flag in line.partition(":")[2].split()}
    return bool(flags & _BF16_CPU_FLAGS)


def check_device(device: str | torch.device | None, *, zero_gpu: bool = False) -> torch.device:
    """The torch device to run the model on: ``auto`` (or None) is the first GPU when torch sees one,
    else the CPU; ``cpu``, ``cuda`` or ``cuda:N`` ask for one. A GPU that is not there is a
    ValueError that says so, not a crash on the first call. ``zero_gpu``: on a ZeroGPU Space, where a
    GPU is only attached inside ``spaces.GPU`` handlers and the model runs outside them, ``auto`` is
    the CPU."""
    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() and not zero_gpu else "cpu")
    try:
        chosen = torch.device(name)
    except RuntimeError:
        chosen = None
    if chosen is None or chosen.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}.")
    if chosen.type == "cpu":
        return chosen
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ValueError(f"device {device!r} asks for a GPU, but this torch sees none "
                         f"(torch {torch.__version__}, CUDA {torch.version.cuda or 'not built in'}); use cpu or auto.")
    if chosen.index is not None and chosen.index >= count:
        raise ValueError(f"device {device!r} asks for GPU {chosen.index}, but this torch sees {count} "
                         f"(cuda:0 to cuda:{count - 1}).")
    return chosen


def whole_in_range(value, name: str, low: int, high: int | None, what: str = "a whole number") -> int:
    """``value`` as an int when it is a whole number (not a bool) in [low, high] (``high`` None: from
    ``low`` up); else a ValueError naming it."""
    whole = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not whole or value < low or (high is not None and value > high):
        top = "" if high is None else f" to {high}"
        raise ValueError(f"{name} must be {what} from {low}{top}, got {value!r}.")
    return int(value)


def share_of_one(value, name: str, meaning: str = "") -> float:
    """``value`` as a float when it is a number (not a bool) in (0, 1]; else a ValueError naming it
    (and saying what it means, when given)."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not number or not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1]{meaning}, got {value!r}.")
    return float(value)


def number_in_range(value, name: str, low: float, high: float, what: str = "a number", below: bool = False) -> float:
    """``value`` as a float when it is a number (not a bool; numpy's too) in [low, high] — [low, high)
    when ``below`` —; else a ValueError naming it."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not number or not (low <= value < high if below else low <= value <= high):
        top = f"up to, not including, {high:g}" if below else f"to {high:g}"
        raise ValueError(f"{name} must be {what} from {low:g} {top}, got {value!r}.")
    return float(value)
