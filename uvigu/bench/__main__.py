"""``python -m uvigu.bench``: the same as ``uvigu bench``."""

import sys

from ..cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
