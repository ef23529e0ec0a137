"""Serve Uni-ViGU Studio: ``python app.py [--model DIR] [--host H] [--port P] [--data-dir DIR] [--share]
[--device D] [--dtype T] [--threads N]``.

Every flag has an environment variable alternative (for Hugging Face Spaces and containers):
``UVIGU_MODEL``, ``GRADIO_SERVER_NAME``, ``GRADIO_SERVER_PORT``, ``UVIGU_DATA_DIR``,
``GRADIO_SHARE``, ``UVIGU_DEVICE``, ``UVIGU_DTYPE``, ``UVIGU_THREADS``; and
``UVIGU_SESSION_MAX_AGE_DAYS`` for how long unused sessions are kept.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from uvigu.loading import model_kind
from uvigu.models.presets import SHIPPED_MODEL_DIR as DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = ROOT / "studio-data"

logger = logging.getLogger("uvigu.app")


def _env_flag(name: str) -> bool:
    """An environment variable set to 1, true or yes (any case)."""
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def _port(text: str) -> int:
    """A TCP port number, for argparse (which also runs an environment variable's default through it)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"a port is a whole number from 1 to 65535, got {text!r} (from --port or GRADIO_SERVER_PORT)")
    return port


def _days(text: str) -> float:
    """How long unused sessions are kept, for argparse: a positive number of days, ``inf`` for ever."""
    try:
        days = float(text)
    except ValueError:
        days = float("nan")
    if not days > 0:  # 0 or less would delete every session at start-up, those in use too
        raise argparse.ArgumentTypeError(
            f"sessions are kept a number of days above 0 (inf: for ever), got {text!r} "
            "(from --session-max-age-days or UVIGU_SESSION_MAX_AGE_DAYS)")
    return days


def _threads(text: str) -> int | None:
    """torch's CPU threads for the model, for argparse: a whole number from 1, or auto (torch's choice)."""
    if text.strip().lower() == "auto":
        return None
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if threads < 1:
        raise argparse.ArgumentTypeError(
            f"threads is a whole number from 1, or auto, got {text!r} (from --threads or UVIGU_THREADS)")
    return threads


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description="Serve Uni-ViGU Studio in the browser.")
    parser.add_argument("--model", type=Path, default=Path(env.get("UVIGU_MODEL", DEFAULT_MODEL)),
                        help="pipeline folder (diffusers layout), or a training checkpoint (<run>/checkpoints/step_N, "
                        "its EMA weights) [env UVIGU_MODEL; default: %(default)s]")
    parser.add_argument("--host", default=env.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on; 0.0.0.0 for all [env GRADIO_SERVER_NAME]")
    parser.add_argument("--port", type=_port, default=env.get("GRADIO_SERVER_PORT", "7860"),
                        help="port [env GRADIO_SERVER_PORT; default: %(default)s]")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(env.get("UVIGU_DATA_DIR", DEFAULT_DATA_DIR)),
                        help="where sessions and clips are kept [env UVIGU_DATA_DIR; default: %(default)s]")
    parser.add_argument("--share", action="store_true",
                        default=_env_flag("GRADIO_SHARE"),
                        help="also serve through a public gradio.live link [env GRADIO_SHARE]")
    parser.add_argument("--device", default=env.get("UVIGU_DEVICE", "auto"),
                        help="where the model runs: auto (the GPU when torch sees one, except on ZeroGPU; else the "
                        "CPU), cpu, cuda or cuda:N [env UVIGU_DEVICE; default: %(default)s]")
    parser.add_argument("--dtype", default=env.get("UVIGU_DTYPE", "auto"),
                        help="precision of the denoiser's weights: float32, bfloat16, or auto — bfloat16 where the "
                        "hardware computes it natively (an Ampere or newer GPU, a CPU with AMX or AVX-512 BF16), "
                        "else float32 (its norms and modulation stay float32; docs/BENCHMARKS.md times both) "
                        "[env UVIGU_DTYPE; default: %(default)s]")
    parser.add_argument("--threads", type=_threads, default=env.get("UVIGU_THREADS", "auto"),
                        help="torch's CPU threads for the model: auto (torch's choice) or a whole "
                        "number; where the browser runs on the same few cores, 1 can be faster, since the "
                        "browser's work stalls the model's threads [env UVIGU_THREADS; default: %(default)s]")
    parser.add_argument("--session-max-age-days", type=_days,
                        default=env.get("UVIGU_SESSION_MAX_AGE_DAYS", "30"),
                        help="delete sessions unused for this many days; inf keeps them for ever "
                        "[env UVIGU_SESSION_MAX_AGE_DAYS; default: %(default)s]")
    return parser.parse_args(argv)


def on_zero_gpu() -> bool:
    """Whether this is a ZeroGPU Space, which attaches a GPU only inside ``spaces.GPU`` handlers."""
    return _env_flag("SPACES_ZERO_GPU")


def gpu_decorator() -> Callable[[Callable], Callable]:
    """``spaces.GPU`` on Hugging Face Spaces (it is itself a no-op off ZeroGPU), else identity."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda fn: fn
    return spaces.GPU


def check_model(path: Path) -> None:
    """Stop, saying how to get one, when ``path`` holds no model (before any weights load)."""
    if model_kind(path) is not None:
        return
    raise SystemExit(
        f"No Uni-ViGU model at {path} (neither a pipeline folder with model_index.json nor a training "
        "checkpoint with state.json).\n"
        f"The default model ships in the repository as {DEFAULT_MODEL.relative_to(ROOT)}; "
        "reproduce it with `uvigu train --preset shapes-gpu` (or `--preset shapes` on a CPU) and copy "
        "OUT/pipeline there, or point --model (or UVIGU_MODEL) at any Uni-ViGU pipeline folder saved with "
        "save_pretrained(), or at a training run's OUT/checkpoints/step_N."
    )


def check_data_dir(path: Path) -> None:
    """Stop, saying why, when sessions cannot be kept in ``path`` (created if missing)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise SystemExit(
            f"--data-dir: cannot keep sessions in {path} ({error.strerror or error}); choose a folder this user "
            "can write, with --data-dir or UVIGU_DATA_DIR."
        ) from None


def check_port(host: str, port: int) -> None:
    """Stop, saying what to do, when the studio could not listen on ``host``:``port`` — before the model
    loads, which for a large model takes minutes. Binds as the server will (address reuse on, so a
    port a closed server left in TIME_WAIT counts as free)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise SystemExit(f"--host: cannot listen on {host!r} ({error.strerror}).") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise SystemExit(
                    f"--port: port {port} is in use (another studio, or another server); stop it, or pass "
                    "another port with --port or GRADIO_SERVER_PORT."
                ) from None
            raise SystemExit(f"--host: cannot listen on {host}:{port} ({error.strerror or error}).") from None


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    check_model(args.model)

    import torch

    from ui import build_demo, launch_options
    from uvigu.inputs import check_device, check_dtype
    from uvigu.loading import load_pipeline
    from uvigu.studio import Studio, StudioSettings, one_torch_thread

    try:
        device = check_device(args.device, zero_gpu=on_zero_gpu())
    except ValueError as error:
        raise SystemExit(f"--device: {error}") from None
    try:
        dtype = check_dtype(args.dtype, device)
    except ValueError as error:
        raise SystemExit(f"--dtype: {error}") from None
    check_data_dir(args.data_dir)
    check_port(args.host, args.port)
    if args.threads is not None:
        torch.set_num_threads(args.threads)  # the count the studio's worker thread takes
    logger.info("loading %s on %s in %s, CPU threads: %d", args.model, device, str(dtype).removeprefix("torch."),
                torch.get_num_threads())
    with one_torch_thread():  # the model runs on the studio's worker thread, not this one
        pipe = load_pipeline(args.model, device, dtype)
    settings = StudioSettings(data_dir=args.data_dir, session_max_age_days=args.session_max_age_days)
    studio = Studio(pipe, settings)
    studio.cleanup()
    demo = build_demo(studio, gpu=gpu_decorator())
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        allowed_paths=[str(settings.data_dir.resolve())],
        max_file_size=settings.max_upload_bytes,
        **launch_options(),
    )


if __name__ == "__main__":
    sys.exit(main())
