"""What a gateway's store holds on disk right now, read from a copy of its files.

The gateway holds its database exclusively (README "Durability": no wal-index file on the card),
so no other connection can open it while the gateway runs. A copy of the database and its WAL is
what a power cut at that moment would leave: opening the copy, SQLite replays the WAL's complete
commits exactly as the gateway's next start would, and ignores a frame half-written.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# A copy taken while a WAL checkpoint writes into the database file can mix two moments of it
# (rare: the copy takes microseconds); such a copy fails SQLite's integrity check and is taken
# again.
COPY_ATTEMPTS = 5


@contextmanager
def on_disk(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a copy of ``db_path`` and its WAL (an empty database if there is none)."""
    with tempfile.TemporaryDirectory(prefix="on-disk-") as folder:
        copy = Path(folder) / db_path.name
        db: sqlite3.Connection | None = None
        for _ in range(COPY_ATTEMPTS):
            if db is not None:
                db.close()
            for name in (f"{copy.name}-wal", f"{copy.name}-shm", copy.name):
                copy.with_name(name).unlink(missing_ok=True)
            # The WAL first: frames are only written over after the database has them all.
            for suffix in ("-wal", ""):
                try:
                    shutil.copyfile(
                        db_path.with_name(db_path.name + suffix),
                        copy.with_name(copy.name + suffix),
                    )
                except FileNotFoundError:
                    continue
            db = sqlite3.connect(copy)
            if db.execute("PRAGMA integrity_check").fetchone()[0] == "ok":
                break
        assert db is not None
        try:
            yield db
        finally:
            db.close()
