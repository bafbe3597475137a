"""`python -m sandbox.secret_key`: give this checkout a SECRET_KEY of its own, in `.env`.

With DEBUG off (the default) the hub refuses to start without a SECRET_KEY (synchub/settings.py).
`make run` calls this first, so that a fresh clone starts: unless the environment or `.env`
already holds a real key, it writes a random one into `.env` beside manage.py (git-ignored), where
manage.py, the sandbox's processes and the README's commands all read it. Written once and kept,
so sessions survive restarts.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
ENV_FILE = BASE_DIR / ".env"
# What synchub/settings.py refuses with DEBUG off: no key, the old built-in development key, and
# the placeholder earlier .env.example files carried.
PLACEHOLDERS = ("", "insecure-development-key-change-me", "change-me")
# A SECRET_KEY line as django-environ's read_env reads it (`export ` allowed, quotes stripped).
_LINE = re.compile(r"\A(?:export )?SECRET_KEY=(.*)\Z")


def _unquoted(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def dotenv_secret_key(env_file: Path = ENV_FILE) -> str | None:
    """The SECRET_KEY `env_file` sets (its last one, as read_env takes), or None."""
    if not env_file.exists():
        return None
    values = [_unquoted(m.group(1)) for line in env_file.read_text().splitlines() if (m := _LINE.match(line))]
    return values[-1] if values else None


def ensure_secret_key(env_file: Path = ENV_FILE, environ: dict[str, str] | None = None) -> bool:
    """Write a random SECRET_KEY into `env_file` unless one is configured; True if it wrote one.

    A SECRET_KEY in the environment wins over `.env` (the settings read it first), so then nothing
    is written, whatever it is. An empty or placeholder line in `.env` (e.g. from copying
    .env.example) is replaced in place; otherwise the key is appended.
    """
    environ = os.environ if environ is None else environ
    if "SECRET_KEY" in environ or (dotenv_secret_key(env_file) or "") not in PLACEHOLDERS:
        return False
    line = f"SECRET_KEY={secrets.token_urlsafe(64)}"
    if env_file.exists():
        lines = env_file.read_text().splitlines()
        replaced = [line if _LINE.match(old) else old for old in lines]
        if replaced == lines:
            replaced += ["# Generated for this checkout by `make run` (sandbox/secret_key.py).", line]
        env_file.write_text("\n".join(replaced) + "\n")
    else:
        # Readable by its owner only: it holds a secret.
        descriptor = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(f"# Generated for this checkout by `make run` (sandbox/secret_key.py).\n{line}\n")
    return True


def main() -> int:
    if ensure_secret_key():
        print(f"Wrote a new random SECRET_KEY into {ENV_FILE} (git-ignored).", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
