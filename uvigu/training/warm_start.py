"""Start a run from the weights of a saved pipeline instead of random ones (``uvigu train --init-from``).

Two uses: fine-tuning the shipped model on your own clips, and continuing its training with more
steps. The run's model is built from its preset as usual, over the saved pipeline's vocabulary
plus any new words of the data; every weight is then copied from the saved pipeline. Rows of the
vocabulary-indexed tables (token embeddings, the text head, the prompt encoder's token table) are
copied word by word, so a word keeps what it learned even when new words shift the ids; new words
keep their fresh random rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..models.autoencoder import VideoAutoencoder
from ..models.tokenizer import SPECIAL_TOKENS

# Transformer settings a run may add to a saved model that lacks them (its value there: 0), with the
# parameters they bring; these start as initialised — zero, so the model starts as the saved one.
ADDABLE = {"position_features": ("pos_embedding.weight", "pos_embedding.bias")}

# Parameters with one row per vocabulary id, by component.
VOCAB_TABLES = {
    "transformer": ("token_embedding.weight", "proj_out_t.weight", "proj_out_t.bias"),
    "text_encoder": ("shared.weight", "encoder.embed_tokens.weight"),
}


def load_source(path: str | Path):
    """The saved pipeline at ``path``, with a clear error when there is none."""
    from ..pipeline import UniViGUPipeline

    folder = Path(path)
    if not (folder / "model_index.json").is_file():
        raise ValueError(f"--init-from needs a saved pipeline folder (with model_index.json); {folder} is not one.")
    return UniViGUPipeline.from_pretrained(folder)


def saved_addable(path: str | Path) -> dict[str, int]:
    """The ADDABLE settings the saved pipeline at ``path`` was trained with (those it has, > 0), read
    from its transformer's config; {} where there is none to read (``load_source`` says why later).
    A run from it that does not set one keeps the saved model's, so what they learned is kept."""
    config_file = Path(path) / "transformer" / "config.json"
    if not config_file.is_file():
        return {}
    saved = json.loads(config_file.read_text(encoding="utf-8"))
    return {key: saved[key] for key in ADDABLE if saved.get(key)}


def source_words(source) -> list[str]:
    """The words of a saved pipeline's word-level vocabulary (special tokens left out)."""
    vocab = source.tokenizer.get_vocab()
    if not all(token in vocab for token in SPECIAL_TOKENS):
        raise ValueError("--init-from takes pipelines with this project's word-level vocabulary (those "
                         "`uvigu train` makes); this one has another tokenizer.")
    return sorted(set(vocab) - set(SPECIAL_TOKENS))


@torch.no_grad()
def copy_weights(target, source, source_name: str = "the saved pipeline") -> list[str]:
    """Copy every transformer, prompt-encoder and learned-codec weight of ``source`` into ``target``
    (pipelines of the same architecture); vocabulary tables row by word. Returns the words ``target`` knows and
    ``source`` does not (their rows stay as initialised)."""
    settings = {k: v for k, v in target.transformer.config.items() if not k.startswith("_") and k != "vocab_size"}
    saved = lambda key: source.transformer.config.get(key, 0 if key in ADDABLE else None)  # noqa: E731
    differ = sorted(k for k, v in settings.items() if _plain(saved(k)) != _plain(v))
    # settings the run adds (the saved model has none): their parameters keep their zero init below
    gained = [key for key in ADDABLE if key in differ and not saved(key)]
    differ = [key for key in differ if key not in gained]
    added = {parameter for key in gained for parameter in ADDABLE[key]}
    for key in ADDABLE:
        if key in differ:  # the saved model has them: a run without would drop what they learned
            raise ValueError(f"{source_name} was trained with {key} {saved(key)}; pass "
                             f"--{key.replace('_', '-')} {saved(key)} to keep what they learned.")
    if differ:
        raise ValueError(f"{source_name}'s transformer differs from this preset's in {', '.join(differ)}; "
                         "choose the preset it was trained with.")
    _copy_codec(target.codec, source.codec, source_name)
    new_vocab, old_vocab = target.tokenizer.get_vocab(), source.tokenizer.get_vocab()
    shared = sorted(set(new_vocab) & set(old_vocab))
    new_ids = torch.tensor([new_vocab[w] for w in shared])
    old_ids = torch.tensor([old_vocab[w] for w in shared])
    for name, tables in VOCAB_TABLES.items():
        new_module, old_module = getattr(target, name), getattr(source, name)
        new_state, old_state = new_module.state_dict(), old_module.state_dict()
        extra = sorted(set(old_state) - set(new_state))
        missing = sorted(k for k in set(new_state) - set(old_state) if not (name == "transformer" and k in added))
        if extra or missing:
            raise ValueError(f"{source_name} has a different {name} architecture than this preset (missing: "
                             f"{missing[:3]}, unexpected: {extra[:3]}); choose the preset it was trained with.")
        for key, value in new_state.items():
            if key not in old_state:  # a parameter the run adds: as initialised (zero)
                continue
            old = old_state[key].to(value.dtype)
            by_word = key in tables
            compared = 1 if by_word else 0  # a by-word table's row count is its vocabulary's
            if old.shape[compared:] != value.shape[compared:]:
                raise ValueError(f"{source_name}: {name}.{key} has shape {tuple(old.shape)}, this preset "
                                 f"needs {tuple(value.shape)}; choose the preset it was trained with.")
            if by_word:
                value[new_ids] = old[old_ids]
            else:
                value.copy_(old)
        new_module.load_state_dict(new_state)
    return sorted(set(new_vocab) - set(old_vocab))


def _copy_codec(target, source, source_name: str) -> None:
    """A learned codec is copied whole: the transformer was trained on its latents."""
    if not isinstance(target, VideoAutoencoder):
        return
    settings = lambda codec: {k: _plain(v) for k, v in codec.config.items() if not k.startswith("_")}  # noqa: E731
    if type(source) is not type(target) or settings(source) != settings(target):
        raise ValueError(f"{source_name}'s codec ({type(source).__name__}) differs from this preset's; "
                         "choose the preset it was trained with.")
    target.load_state_dict(source.state_dict())


def _plain(value):
    """Config values as saved to JSON (tuples read back as lists)."""
    return list(value) if isinstance(value, tuple) else value
