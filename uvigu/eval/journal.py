"""A long evaluation's records, kept as they are made, so that an interrupted run goes on from them.

`uvigu eval` takes about eleven seconds a clip on the 2-core CPU, over an hour for its 400 clips;
`uvigu eval --data` about a second a clip, of as many as a folder holds.
Each clip's record is appended to a journal beside the results (one JSON line, flushed to disk)
under a first line naming the run (`run_key`: the model's weights and configuration, where it runs,
and the seeds that pick the clips). Started again with the same key, the run takes the journal's
records instead of making them again; every clip's record depends only on the key and the clip's
index, so the result is the uninterrupted run's. A journal of another run is set aside, never
mixed in. A run holds its journal locked: a second run writing the same report is refused rather
than interleaved. The finished run deletes its journal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

RecordKey = tuple[str, int]


def by_set_and_index(record: dict) -> RecordKey:
    """Which clip a Shapes evaluation record is of."""
    return record["set"], record["index"]


def _digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_key(pipe, fields: dict[str, object]) -> str:
    """A fingerprint of what a pipeline's records depend on: its configuration, every weight of
    its torch modules (and of a high-noise expert's, with its boundary), its tokenizer's
    vocabulary, where and in what precision it runs, and the caller's ``fields`` (the seeds that
    pick the clips) — not which folder it was loaded from, so a copied or moved model goes on
    from its journal."""
    import torch

    import uvigu

    digest = hashlib.sha256()
    config = dict(getattr(pipe, "config", {}) or {})
    config.pop("_name_or_path", None)  # where it was loaded from, not what it computes
    tokenizer = getattr(pipe, "tokenizer", None)
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else None
    described = {"config": config, "fields": fields, "vocab": vocab, "device": str(getattr(pipe, "device", "")),
                 "dtype": str(getattr(pipe, "dtype", "")), "version": uvigu.__version__}
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())

    def weights(model, prefix: str) -> None:
        components = getattr(model, "components", None) or {}
        for name in sorted(components):
            module = components[name]
            if isinstance(module, torch.nn.Module):
                for key, tensor in sorted(module.state_dict().items()):
                    digest.update(f"{prefix}{name}.{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                    digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())

    weights(pipe, "")
    if (expert := getattr(pipe, "high_noise_expert", None)) is not None:  # it makes some of the clips' steps
        digest.update(f"high_noise_expert from {expert[1]!r}".encode())
        weights(expert[0], "high_noise_expert.")
    return digest.hexdigest()


class RunJournal:
    """The records of the run ``key`` at ``path``: ``done`` holds those an interrupted run left (by
    ``identify(record)``: which clip it is of), ``carried_s`` the wall time it had spent; ``add``
    appends one as it is made, with the digests of the files made with it (``files_intact`` checks
    them). As a context manager it is closed on leaving, and kept unless ``finish`` was called."""

    def __init__(self, path: str | Path, key: str, identify: Callable[[dict], RecordKey] = by_set_and_index) -> None:
        self.path, self.key, self.identify = Path(path), key, identify
        self.done: dict[RecordKey, dict] = {}
        self._digests: dict[RecordKey, dict[str, str]] = {}  # the files made with each record, by name
        self.carried_s = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b")  # noqa: SIM115 (open, and locked, until finish or close)
        try:
            _lock(self._file, self.path)
            self._read()
        except BaseException:
            self._file.close()
            raise
        self._opened = time.perf_counter()

    def _read(self) -> None:
        """Take the records of an interrupted run of this key, and cut the journal after the last
        whole one (a line being written when the run stopped). A journal of another run is copied
        aside (``.other``) and this one starts anew, with its first line."""
        self._file.seek(0)
        data = self._file.read()
        lines = data.splitlines(keepends=True)
        if lines and _header_key(lines[0]) != self.key:
            aside = self.path.with_suffix(self.path.suffix + ".other")
            aside.write_bytes(data)
            logger.warning("%s belongs to another run (another model, settings or clips); set aside as %s, "
                           "starting over", self.path, aside.name)
            self._file.truncate(0)
            lines = []
        if not lines:
            self._file.write((json.dumps({"key": self.key}) + "\n").encode())
        kept = len(lines[0]) if lines else 0
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                record = entry["record"]
                done, carried = self.identify(record), float(entry["elapsed_s"])
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
                break
            if not line.endswith(b"\n"):
                break
            self.done[done], self.carried_s = record, carried
            self._digests[done] = entry.get("files") or {}
            kept += len(line)
        if lines:
            self._file.truncate(kept)
        self._file.flush()

    def add(self, record: dict, files: Iterable[str | Path] = ()) -> None:
        """Append ``record`` with the run's wall time so far and the digests of ``files`` (made
        with it, e.g. its example strips), on disk before this returns."""
        elapsed = self.carried_s + time.perf_counter() - self._opened
        entry = {"elapsed_s": round(elapsed, 3), "record": record}
        if digests := {Path(f).name: _digest(f) for f in files}:
            entry["files"] = digests
        line = json.dumps(entry, sort_keys=True) + "\n"
        self._file.write(line.encode())
        self._file.flush()
        os.fsync(self._file.fileno())

    def files_intact(self, done: RecordKey, files: Iterable[str | Path]) -> bool:
        """Whether ``files`` are there as the interrupted run made them with its record ``done`` —
        not another run's files of the same names (a journal written before digests were kept
        only asks that they are there)."""
        digests = self._digests.get(done, {})
        return all(Path(f).is_file() and (not digests or digests.get(Path(f).name) == _digest(f)) for f in files)

    def elapsed_s(self) -> float:
        """Wall time of the run: the interrupted runs' and this one's."""
        return self.carried_s + time.perf_counter() - self._opened

    def __enter__(self) -> RunJournal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()  # the journal stays, for the next run to go on from, unless the run finished

    def close(self) -> None:
        self._file.close()

    def finish(self) -> None:
        """The run is done and its results written elsewhere: the journal goes."""
        self.path.unlink(missing_ok=True)
        self.close()


def _header_key(line: bytes) -> str | None:
    """The run a journal's whole first line names (None for anything else)."""
    try:
        header = json.loads(line) if line.endswith(b"\n") else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return header.get("key") if isinstance(header, dict) else None


def _lock(file, path: Path) -> None:
    """Hold ``file`` for this process alone: a second run writing the same report is refused, not interleaved."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        return
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        raise ValueError(f"another run is writing {path} (it is locked); wait for it to finish, "
                         "or write the report somewhere else") from error
