"""What a model's words and grammar say of a text: the words it knows, how its prompts go, and
how a caption reads against the prompt it was made from.

The Shapes model declares its grammar (``take_judge`` "shapes", `uvigu.eval.grammar`); a model that
declares none answers ``None`` or nothing where the grammar would speak. The studio shows all of
this beside the prompt and the caption.
"""

from __future__ import annotations

from .inputs import prompt_tokens
from .judge import ReadBack, read_back
from .models.tokenizer import known_words, unknown_words


class LanguageMixin:
    """`UniViGUPipeline`'s reading of texts, by its tokenizer and its ``take_judge``."""

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` the model's tokenizer does not know."""
        return unknown_words(self.tokenizer, text)

    def known_words(self) -> list[str] | None:
        """The words the model's tokenizer knows, sorted (``None``: a subword tokenizer, which knows every word)."""
        return known_words(self.tokenizer)

    def _grammar(self):
        """The Shapes world's grammar (`uvigu.eval.grammar`) for a model that judges takes by it
        (``take_judge`` "shapes"); ``None`` for a model that declares none."""
        if self.config.take_judge != "shapes":
            return None
        from uvigu.eval import grammar

        return grammar

    def follows_grammar(self, caption: str) -> bool | None:
        """Whether ``caption`` follows the grammar the model was trained to write — the Shapes
        world's, for a model that judges takes by it (``take_judge`` "shapes") — or ``None`` for a
        model that declares none. A caption that does not is a sign that the clip is unlike the
        footage the model learned from."""
        grammar = self._grammar()
        return None if grammar is None else grammar.follows_grammar(caption)

    def prompt_guide(self) -> str | None:
        """How the prompts the model learned go — the Shapes world's grammar, for a model that judges
        takes by it (``take_judge`` "shapes") — in a few sentences; ``None`` for a model that declares none."""
        grammar = self._grammar()
        return None if grammar is None else grammar.prompt_guide()

    def prompt_notes(self, prompt: str) -> list[str]:
        """What ``prompt`` asks beyond the clips the model learned, or that its training held out (for
        the Shapes model: more objects than a clip has, two of one colour, a held-out colour–shape
        pair), each as a sentence; empty for other models. Unknown words are `unknown_words`'."""
        grammar = self._grammar()
        return [] if grammar is None else grammar.prompt_notes(prompt)

    def read_back(self, prompt: str, caption: str) -> list[ReadBack]:
        """What ``caption`` says of each thing ``prompt`` asks for, as this model's ``take_judge``
        reads the two (`uvigu.judge.read_back`): for the Shapes model each prompted object's
        colour, shape and motion against the caption's, the background, and the objects the
        caption names beyond those asked for; for others the prompt's words. With the
        caption of a clip made from the prompt, this is the round trip, ask by ask."""
        return read_back(self.config.take_judge, prompt, caption)

    def corrected_caption(self, prompt: str, caption: str) -> str | None:
        """``caption`` rewritten to say what ``prompt`` asks where it says otherwise — the text to
        edit the clip with (``source_prompt=caption``) so that it shows what was asked — for a model
        whose ``take_judge`` is the Shapes grammar (`uvigu.eval.grammar.corrected_caption`); ``None``
        when there is nothing to correct, the caption is not of the grammar, or the model has none."""
        grammar = self._grammar()
        return None if grammar is None else grammar.corrected_caption(prompt, caption)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as a prompt (its whitespace collapsed, as the tasks read it): what
        ``max_text_tokens`` limits."""
        return prompt_tokens(self.tokenizer, text)[1]
