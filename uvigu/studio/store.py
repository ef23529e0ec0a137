"""Durable sessions and takes: SQLite (WAL) for the records, atomically placed folders for files.

Layout under the data directory::

    studio.sqlite3
    sessions/<session id>/takes/<take id>/{frames.npy, clip.mp4, thumb.png}
    sessions/<session id>/.staging-<random>/      a take being written (removed on recovery)

A take becomes visible in one step: its files are written into a staging folder, the folder
is renamed into place, then the row is inserted. A crash before the insert leaves a folder
without a row, which :meth:`TakeStore.recover` deletes, so the session is as it was.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SESSION_ID_RE = re.compile(r"[0-9a-f]{64}")
TAKE_ID_RE = re.compile(r"[0-9a-f]{16}")
TAKE_FILES = ("frames.npy", "clip.mp4", "thumb.png")
MODES = ("generate", "joint", "edit", "caption")
# How each mode's take is named to a person: the studio's take titles and History, its steps' picture.
MODE_LABELS = {"generate": "generated", "joint": "generated jointly", "edit": "regenerated with edits",
               "caption": "uploaded"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    last_used REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS takes (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    parent_id TEXT,
    mode TEXT NOT NULL,
    prompt TEXT NOT NULL,
    caption TEXT NOT NULL,
    critique TEXT NOT NULL DEFAULT '',
    seed INTEGER NOT NULL,
    settings TEXT NOT NULL,
    unknown_words TEXT NOT NULL,
    notes TEXT NOT NULL,
    timings TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS takes_by_session ON takes(session_id, seq);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Take:
    """One clip in a session and everything that made it.

    ``prompt`` is what conditioned the clip: the typed prompt for generate/joint, the edited
    caption for edit, empty for an uploaded clip (mode ``caption``). ``caption`` is what the
    model says the clip shows.
    """

    id: str
    seq: int  # 1-based position in the session
    parent_id: str | None
    mode: str
    prompt: str
    caption: str
    critique: str
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    unknown_words: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what was changed on an upload to fit the model
    timings: dict[str, float] = field(default_factory=dict)  # seconds: queued, generate, caption
    created: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "parent_id": self.parent_id,
            "mode": self.mode,
            "prompt": self.prompt,
            "caption": self.caption,
            "critique": self.critique,
            "seed": self.seed,
            "settings": self.settings,
            "unknown_words": list(self.unknown_words),
            "notes": list(self.notes),
            "timings": self.timings,
            "created": self.created,
        }


def check_session_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not SESSION_ID_RE.fullmatch(session_id):
        raise ValueError("Unknown session.")
    return session_id


def check_take_id(take_id: str) -> str:
    if not isinstance(take_id, str) or not TAKE_ID_RE.fullmatch(take_id):
        raise ValueError("No such take in this session.")
    return take_id


def new_take_id() -> str:
    return secrets.token_hex(8)


class TakeStore:
    """Thread-safe persistence of sessions and takes under one data directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.sessions_dir = self.root / "sessions"
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.root / "studio.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self.recover()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- paths -----------------------------------------------------------------------------

    def session_dir(self, session_id: str) -> Path:
        return self._inside(self.sessions_dir, check_session_id(session_id))

    def take_dir(self, session_id: str, take_id: str) -> Path:
        return self._inside(self.session_dir(session_id), "takes", check_take_id(take_id))

    def take_file(self, session_id: str, take_id: str, name: str) -> Path:
        """Path of one of a take's files, after checking the take belongs to the session."""
        if name not in TAKE_FILES:
            raise ValueError(f"A take has no file named {name!r}.")
        self.get_take(session_id, take_id)
        path = self._inside(self.take_dir(session_id, take_id), name)
        if not path.is_file():
            raise ValueError("This take's file is missing.")
        return path

    def resolve_in_session(self, session_id: str, relative: str | Path) -> Path:
        """Resolve a path given relative to a session's folder, refusing any way out of it."""
        return self._inside(self.session_dir(session_id), relative)

    @staticmethod
    def _inside(base: Path, *parts: str | Path) -> Path:
        base = base.resolve()
        path = base.joinpath(*parts).resolve()
        if path == base or not path.is_relative_to(base):
            raise ValueError("That file is not part of this session.")
        return path

    # -- sessions --------------------------------------------------------------------------

    def create_session(self, session_id: str) -> None:
        check_session_id(session_id)
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO sessions(id, created, last_used) VALUES (?, ?, ?)",
                (session_id, now, now),
            )
        self.session_dir(session_id).mkdir(parents=True, exist_ok=True)

    def has_session(self, session_id: str) -> bool:
        if not isinstance(session_id, str) or not SESSION_ID_RE.fullmatch(session_id):
            return False
        with self._lock:
            row = self._db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row is not None

    def touch_session(self, session_id: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE sessions SET last_used = ? WHERE id = ?", (time.time(), session_id)
            )

    def sessions_unused_since(self, cutoff: float) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM sessions WHERE last_used < ?", (cutoff,)
            ).fetchall()
        return [row["id"] for row in rows]

    def delete_session(self, session_id: str) -> None:
        folder = self.session_dir(session_id)
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        shutil.rmtree(folder, ignore_errors=True)

    # -- takes -----------------------------------------------------------------------------

    def stage(self, session_id: str) -> Path:
        """A fresh folder inside the session to write a take's files into."""
        staging = self.session_dir(session_id) / f".staging-{secrets.token_hex(8)}"
        staging.mkdir(parents=True)
        return staging

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def commit_take(self, session_id: str, take: Take, staging: Path) -> Take:
        """Move a staged folder into place and record the take; returns it with its ``seq``."""
        final = self.take_dir(session_id, take.id)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging.replace(final)
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    (seq,) = self._db.execute(
                        "SELECT COALESCE(MAX(seq), 0) + 1 FROM takes WHERE session_id = ?",
                        (session_id,),
                    ).fetchone()
                    self._db.execute(
                        "INSERT INTO takes(id, session_id, seq, parent_id, mode, prompt, caption,"
                        " critique, seed, settings, unknown_words, notes, timings, created)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            take.id, session_id, seq, take.parent_id, take.mode, take.prompt,
                            take.caption, take.critique, take.seed, json.dumps(take.settings),
                            json.dumps(list(take.unknown_words)), json.dumps(list(take.notes)),
                            json.dumps(take.timings), take.created,
                        ),
                    )
                    self._db.execute(
                        "UPDATE sessions SET last_used = ? WHERE id = ?", (time.time(), session_id)
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        return self.get_take(session_id, take.id)

    def get_take(self, session_id: str, take_id: str) -> Take:
        check_session_id(session_id)
        check_take_id(take_id)
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM takes WHERE id = ? AND session_id = ?", (take_id, session_id)
            ).fetchone()
        if row is None:
            raise ValueError("No such take in this session.")
        return _take_from_row(row)

    def list_takes(self, session_id: str) -> list[Take]:
        check_session_id(session_id)
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM takes WHERE session_id = ? ORDER BY seq", (session_id,)
            ).fetchall()
        return [_take_from_row(row) for row in rows]

    def count_takes(self, session_id: str) -> int:
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM takes WHERE session_id = ?", (session_id,)
            ).fetchone()
        return n

    def set_critique(self, session_id: str, take_id: str, critique: str) -> Take:
        self.get_take(session_id, take_id)
        with self._lock:
            self._db.execute(
                "UPDATE takes SET critique = ? WHERE id = ? AND session_id = ?",
                (critique, take_id, session_id),
            )
        return self.get_take(session_id, take_id)

    def delete_takes(self, session_id: str, take_ids: list[str]) -> int:
        """Delete takes of a session, their records first and then their folders (a crash between
        the two leaves folders without records, which :meth:`recover` removes). Takes made from a
        deleted one keep their records, with a parent that is no longer there. Returns how many
        were deleted; ids not in the session are ignored."""
        check_session_id(session_id)
        ids = [check_take_id(take_id) for take_id in take_ids]
        if not ids:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                deleted = self._db.executemany(
                    "DELETE FROM takes WHERE session_id = ? AND id = ?", [(session_id, i) for i in ids]
                ).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        for take_id in ids:
            shutil.rmtree(self.take_dir(session_id, take_id), ignore_errors=True)
        return deleted

    def instance_secret(self) -> str:
        """A random secret made once per data directory (e.g. to encrypt browser-held state),
        so it stays the same across restarts."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('secret', ?)",
                (secrets.token_urlsafe(32),),
            )
            (value,) = self._db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
        return value

    # -- recovery --------------------------------------------------------------------------

    def recover(self) -> None:
        """Delete what an interrupted write left behind: staging folders and unrecorded takes."""
        with self._lock:
            known = {
                (row["session_id"], row["id"])
                for row in self._db.execute("SELECT session_id, id FROM takes")
            }
            sessions = {row["id"] for row in self._db.execute("SELECT id FROM sessions")}
        for folder in self.sessions_dir.iterdir():
            if not folder.is_dir() or folder.name not in sessions:
                logger.info("removing unrecorded session folder %s", folder.name)
                shutil.rmtree(folder, ignore_errors=True)
                continue
            for staging in folder.glob(".staging-*"):
                logger.info("removing interrupted take in %s", folder.name)
                shutil.rmtree(staging, ignore_errors=True)
            takes_dir = folder / "takes"
            if takes_dir.is_dir():
                for take_dir in takes_dir.iterdir():
                    if (folder.name, take_dir.name) not in known:
                        logger.info("removing unrecorded take %s/%s", folder.name, take_dir.name)
                        shutil.rmtree(take_dir, ignore_errors=True)


def _take_from_row(row: sqlite3.Row) -> Take:
    return Take(
        id=row["id"],
        seq=row["seq"],
        parent_id=row["parent_id"],
        mode=row["mode"],
        prompt=row["prompt"],
        caption=row["caption"],
        critique=row["critique"],
        seed=row["seed"],
        settings=json.loads(row["settings"]),
        unknown_words=tuple(json.loads(row["unknown_words"])),
        notes=tuple(json.loads(row["notes"])),
        timings=json.loads(row["timings"]),
        created=row["created"],
    )
