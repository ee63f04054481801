"""Checks that this Python environment holds exactly the locked package set: every package of
constraints/ci.txt and constraints/no-deps.txt at its locked version, nothing else but pip and mfr itself,
on the Python the lock was made for.

The test command runs it after installing and before the tests, so a package installed by hand (or left
over from another project) cannot make a local run pass where a fresh machine fails. Exit code 1 and one
line per difference when the environment differs.

    python constraints/check_installed.py
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCKS = (HERE / "ci.txt", HERE / "no-deps.txt")
# Installed by the set-up itself, not by the lock: the installer and the project.
NOT_LOCKED = {"pip", "mfr"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares it (case, '-', '_' and '.' do not matter)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> tuple[dict[str, str], str | None]:
    """({package: version}, the Python version the lock was made for) of a lock file."""
    pins: dict[str, str] = {}
    python = None
    for line in path.read_text().splitlines():
        if line.startswith("# lock-python:"):
            python = line.split(":", 1)[1].strip()
        elif found := PIN.match(line):
            pins[canonical(found.group(1))] = found.group(2)
    if not pins:
        raise SystemExit(f"{path}: no 'name==version' pins found; regenerate it with constraints/lock")
    return pins, python


def installed() -> dict[str, str]:
    """{package: version} of every distribution this interpreter can import from."""
    return {canonical(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}


def differences(locked: dict[str, str], present: dict[str, str]) -> list[str]:
    """One line per package that is missing, at another version, or not in the lock."""
    lines = [f"missing: {name}=={version}" for name, version in sorted(locked.items()) if name not in present]
    lines += [f"other version: {name}=={present[name]} installed, the lock has {version}"
              for name, version in sorted(locked.items()) if name in present and present[name] != version]
    lines += [f"not in the lock: {name}=={version}" for name, version in sorted(present.items())
              if name not in locked and name not in NOT_LOCKED]
    return lines


def main() -> int:
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    locked: dict[str, str] = {}
    problems = []
    for path in LOCKS:
        pins, python = read_lock(path)
        locked.update(pins)
        if python != running:
            problems.append(f"{path.name} is locked for Python {python}, this is Python {running}: run "
                            f"`MFR_LOCK_PYTHON={running} constraints/lock` (or use Python {python})")
    present = installed()
    if "mfr" not in present:
        problems.append("missing: mfr itself (pip install --no-deps --no-build-isolation -e .)")
    problems += differences(locked, present)
    if problems:
        print(f"{sys.prefix} does not hold the locked package set:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        print("Install into a new virtual environment with the README's test command.", file=sys.stderr)
        return 1
    print(f"{sys.prefix}: {len(locked)} locked packages, nothing else (Python {running})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
