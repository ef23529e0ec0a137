"""The evaluation's clip sets: which Shapes clips `uvigu eval`, `uvigu sweep` and `uvigu probe`
read, with their seeds — the main set (the training distribution, split 'train') and the
held-out set (scenes that each contain a held-out colour–shape pair, split 'heldout'), both drawn
with seeds no training item can have (see `EvalConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from uvigu.data.shapes import HELD_OUT_PAIRS, ShapesConfig, ShapesExample, make_example

SETS = ("main", "heldout")
SET_SPLITS = {"main": "train", "heldout": "heldout"}

# A later first clip keeps main-set Shapes seeds below the held-out set's (2^32 apart) and pipeline
# seeds below 2^31 (the pipeline's limit).
MAX_FIRST_CLIP = 2**30


def counted_objects(set_name: str, mentions) -> list[bool]:
    """Which of a clip's objects (its scene's mentions) a set's object figures count: every object
    of the main set; on the held-out set, those of a held-out colour–shape pair."""
    return [set_name == "main" or (m.color, m.shape) in HELD_OUT_PAIRS for m in mentions]


@dataclass(frozen=True)
class EvalConfig:
    """Which clips are evaluated and how the run reports."""

    num_clips: int = 200  # main set: clips of the training distribution
    num_heldout: int = 100  # held-out set: every scene has a held-out colour–shape pair
    # Shapes seeds. Training item i uses a 64-bit hash of (seed, i) (ShapesDataset.seed_for), so
    # every training seed is < 2**64 and these sets can never share a seed with a training item.
    main_seed_start: int = 2**64
    heldout_seed_start: int = 2**64 + 2**32
    # Seeds of the pipeline calls (noise, text source): clip i of a set uses start + i.
    main_pipeline_seed: int = 0
    heldout_pipeline_seed: int = 1_000_000
    num_examples: int = 2  # clips per set shown as image strips in the report
    log_every: int = 10  # clips between progress log lines

    def __post_init__(self) -> None:
        if self.num_clips < 0 or self.num_heldout < 0 or self.num_clips + self.num_heldout == 0:
            raise ValueError(
                f"need at least one clip: num_clips={self.num_clips}, num_heldout={self.num_heldout} (both >= 0)."
            )
        if self.num_examples < 0 or self.log_every < 1:
            raise ValueError(f"num_examples must be >= 0 and log_every >= 1, got {self.num_examples}, {self.log_every}.")

    def count(self, set_name: str) -> int:
        return self.num_clips if set_name == "main" else self.num_heldout

    def starting_at(self, first: int) -> "EvalConfig":
        """The same sets from clip ``first`` on: clip i of the result is clip first + i here, with its
        Shapes seed and its pipeline seeds — e.g. clips past the evaluation's to choose a setting on."""
        if not 0 <= first <= MAX_FIRST_CLIP:
            raise ValueError(f"the first clip must be from 0 to {MAX_FIRST_CLIP}, got {first}.")
        return replace(self, main_seed_start=self.main_seed_start + first,
                       heldout_seed_start=self.heldout_seed_start + first,
                       main_pipeline_seed=self.main_pipeline_seed + first,
                       heldout_pipeline_seed=self.heldout_pipeline_seed + first)

    def shapes_seed(self, set_name: str, index: int) -> int:
        return (self.main_seed_start if set_name == "main" else self.heldout_seed_start) + index

    def pipeline_seed(self, set_name: str, index: int) -> int:
        return (self.main_pipeline_seed if set_name == "main" else self.heldout_pipeline_seed) + index


def clip_config(pipe) -> ShapesConfig:
    """Shapes clips at the pipeline's default size; the §4 default when that is too small for the
    grammar's object sizes (the pipeline then conforms the clip it is given)."""
    try:
        return ShapesConfig(size=min(pipe.default_height, pipe.default_width), num_frames=pipe.default_num_frames)
    except ValueError:
        return ShapesConfig()


def eval_example(config: EvalConfig, set_name: str, index: int, shapes: ShapesConfig = ShapesConfig()) -> ShapesExample:
    """Clip `index` of evaluation set `set_name` ('main' | 'heldout')."""
    if set_name not in SETS:
        raise ValueError(f"set_name must be one of {SETS}, got {set_name!r}")
    return make_example(config.shapes_seed(set_name, index), shapes, SET_SPLITS[set_name])
