"""Throw-away databases for the end-to-end tests and the benchmarks: a PostgreSQL database of
their own on the server named by DATABASE_URL (as in CI), else an SQLite file."""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import environ


class ScratchDatabase:
    def __init__(self, *, prefix: str, workdir: Path | None = None, base_url: str | None = None) -> None:
        base_url = base_url if base_url is not None else os.environ.get("DATABASE_URL", "")
        if base_url.startswith(("postgres://", "postgresql://")):
            import psycopg

            config = environ.Env.db_url_config(base_url)
            self.name = f"{prefix}_{uuid.uuid4().hex[:8]}"
            self._admin_dsn = self._dsn(config, "postgres")
            with psycopg.connect(self._admin_dsn, autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{self.name}"')
            self.url = base_url.rsplit("/", 1)[0] + f"/{self.name}"
            self.dsn = self._dsn(config, self.name)
            self.engine = "postgresql"
        elif workdir is not None:
            self.name = str(workdir / f"{prefix}.sqlite3")
            self.url = f"sqlite:///{self.name}"
            self.engine = "sqlite"
        else:
            raise ValueError(f"a PostgreSQL DATABASE_URL is needed; got {base_url!r}")

    @staticmethod
    def _dsn(config: dict, name: str) -> str:
        parts = {
            "host": config.get("HOST") or "127.0.0.1",
            "port": config.get("PORT") or 5432,
            "user": config.get("USER") or "postgres",
            "password": config.get("PASSWORD") or "",
            "dbname": name,
        }
        return " ".join(f"{key}={value}" for key, value in parts.items() if value != "")

    def scalar(self, sql: str, params: tuple = ()) -> Any:
        """The first column of the first row (placeholders: %s)."""
        if self.engine == "sqlite":
            with sqlite3.connect(self.name, timeout=20) as connection:
                return connection.execute(sql.replace("%s", "?"), params).fetchone()[0]
        import psycopg

        with psycopg.connect(self.dsn) as connection:
            return connection.execute(sql, params).fetchone()[0]

    def drop(self) -> None:
        if self.engine == "postgresql":
            import psycopg

            with psycopg.connect(self._admin_dsn, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
