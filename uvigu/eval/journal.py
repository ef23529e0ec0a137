"""A long evaluation's records, kept as they are made, so that an interrupted run goes on from them.

`uvigu eval` takes about eleven seconds a clip on the 2-core CPU, over an hour for its 400 clips.
Each clip's record is appended to a journal beside the results (one JSON line, flushed to disk)
under a first line naming the run (`run_key`: the model's weights and configuration, where it runs,
and the seeds that pick the clips). Started again with the same key, the run takes the journal's
records instead of making them again; every clip's record depends only on the key and the clip's
index, so the result is the uninterrupted run's. A journal of another run is set aside, never
mixed in. The finished run deletes its journal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

RecordKey = tuple[str, int]


def run_key(pipe, fields: dict[str, object]) -> str:
    """A fingerprint of what a pipeline's records depend on: its configuration, every weight of
    its torch modules, its tokenizer's vocabulary, where and in what precision it runs, and the
    caller's ``fields`` (the seeds that pick the clips)."""
    import torch

    import uvigu

    digest = hashlib.sha256()
    config = dict(getattr(pipe, "config", {}) or {})
    tokenizer = getattr(pipe, "tokenizer", None)
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else None
    described = {"config": config, "fields": fields, "vocab": vocab, "device": str(getattr(pipe, "device", "")),
                 "dtype": str(getattr(pipe, "dtype", "")), "version": uvigu.__version__}
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    components = getattr(pipe, "components", None) or {}
    for name in sorted(components):
        module = components[name]
        if isinstance(module, torch.nn.Module):
            for key, tensor in sorted(module.state_dict().items()):
                digest.update(f"{name}.{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class RunJournal:
    """The records of the run ``key`` at ``path``: ``done`` holds those an interrupted run left
    (by ``(set, index)``), ``carried_s`` the wall time it had spent; ``add`` appends one as it is made."""

    def __init__(self, path: str | Path, key: str) -> None:
        self.path, self.key = Path(path), key
        self.done: dict[RecordKey, dict] = {}
        self.carried_s = 0.0
        kept = self._read()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in [{"key": key}, *kept]),
                       encoding="utf-8")
        os.replace(tmp, self.path)  # the journal as read, without a line an interruption cut short
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (open until finish or close)
        self._opened = time.perf_counter()

    def _read(self) -> list[dict]:
        """The lines of an interrupted run of this key (none for a missing journal or another run's)."""
        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            header = {}
        if header.get("key") != self.key:
            aside = self.path.with_suffix(self.path.suffix + ".other")
            os.replace(self.path, aside)
            logger.warning("%s belongs to another run (another model, settings or clips); set aside as %s, "
                           "starting over", self.path, aside.name)
            return []
        kept = []
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                record = entry["record"]
                self.done[(record["set"], record["index"])] = record
                self.carried_s = float(entry["elapsed_s"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                break  # the line being written when the run stopped, and nothing after it
            kept.append(entry)
        return kept

    def add(self, record: dict) -> None:
        """Append ``record`` with the run's wall time so far, on disk before this returns."""
        elapsed = self.carried_s + time.perf_counter() - self._opened
        self._file.write(json.dumps({"elapsed_s": round(elapsed, 3), "record": record}, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def elapsed_s(self) -> float:
        """Wall time of the run: the interrupted runs' and this one's."""
        return self.carried_s + time.perf_counter() - self._opened

    def close(self) -> None:
        self._file.close()

    def finish(self) -> None:
        """The run is done and its results written elsewhere: the journal goes."""
        self.close()
        self.path.unlink(missing_ok=True)

