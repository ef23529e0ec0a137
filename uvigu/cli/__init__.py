"""The ``uvigu`` command: ``uvigu train | generate | caption | edit | eval | sweep | probe | bench | export | expert |
shapes | convert-official``.

Each subcommand is one ``add_<name>_parser(subparsers)`` function that declares its arguments and
sets ``func`` to the function that runs it, in the module of its kind of work (``generate``,
``caption``, ``training``, ``evaluate``, ``bench``); ``main`` only wires them. To add a subcommand,
write its two functions and append its ``add_*_parser`` to ``SUBCOMMANDS``. The modules import
torch and the model only when a command runs, so ``uvigu --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from .bench import add_bench_parser
from .caption import add_caption_parser
from .evaluate import add_eval_parser, add_probe_parser, add_shapes_parser, add_sweep_parser
from .generate import add_edit_parser, add_generate_parser
from .training import add_convert_official_parser, add_expert_parser, add_export_parser, add_train_parser

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_train_parser,
    add_generate_parser,
    add_caption_parser,
    add_edit_parser,
    add_eval_parser,
    add_sweep_parser,
    add_probe_parser,
    add_bench_parser,
    add_export_parser,
    add_expert_parser,
    add_shapes_parser,
    add_convert_official_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uvigu", description="Uni-ViGU: generate and describe video with one model.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in SUBCOMMANDS:
        add_parser(subparsers)
    return parser


def _not_said_here(record: logging.LogRecord) -> bool:
    """Leaves out the library's warning of unknown prompt words, which the commands print themselves."""
    return not hasattr(record, "unknown_words")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    inputs_logger = logging.getLogger("uvigu.inputs")
    inputs_logger.addFilter(_not_said_here)
    try:
        return args.func(args)
    except ValueError as error:
        print(f"uvigu {args.command}: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a file that went away: said, not a traceback (-v logs it)
        logging.getLogger("uvigu").debug("uvigu %s failed", args.command, exc_info=True)
        print(f"uvigu {args.command}: {error}", file=sys.stderr)
        return 1
    finally:
        inputs_logger.removeFilter(_not_said_here)

