"""The lock files: they cover what pyproject.toml asks for, hold what constraints/held.txt holds, and are what
the README's test command and .ci/run install; constraints/check_installed.py tells an environment that
differs from them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from constraints.check_installed import canonical, differences, read_lock

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints" / "ci.txt"
LOCKED_EXTRAS = ("export", "eval", "dev")


def pyproject_requirements() -> list[Requirement]:
    tomllib = pytest.importorskip("tomllib", reason="reads pyproject.toml with Python 3.11's tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + [r for extra in LOCKED_EXTRAS for r in project["optional-dependencies"][extra]]
    return [Requirement(r) for r in listed]


def test_the_lock_pins_every_requirement_of_the_locked_extras_within_its_range():
    """A dependency added to pyproject.toml without running constraints/lock fails here, not on a new machine."""
    pins, python = read_lock(LOCK)
    assert python == "3.11"
    requirements = pyproject_requirements()
    assert len(requirements) > 30
    for requirement in requirements:
        name = canonical(requirement.name)
        assert name in pins, f"{requirement} is not in {LOCK.name}: run constraints/lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]}, outside pyproject.toml's {requirement}: run constraints/lock")


def entries(lock: Path) -> dict[str, str]:
    """{package: its entry (the pin and its --hash lines)} of a lock file."""
    found = re.findall(r"^([a-z0-9][a-z0-9._-]*)==\S+ \\\n((?:    --hash=\S+.*\n)*)", lock.read_text(), re.M)
    return {canonical(name): hashes for name, hashes in found}


def test_every_pin_carries_hashes():
    for name in ("ci.txt", "torch.txt", "no-deps.txt"):
        lock = ROOT / "constraints" / name
        pins, _ = read_lock(lock)
        hashed = entries(lock)
        assert set(hashed) == set(pins) and all("--hash=sha256:" in h for h in hashed.values()), name


def test_the_lock_holds_the_held_releases_and_torch_txt_is_its_torch_entry():
    """constraints/held.txt is what the lock keeps on purpose; torch.txt (installed first) is the lock's torch."""
    pins, _ = read_lock(LOCK)
    held = {canonical(m.group(1)): m.group(2) for m in
            re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", (ROOT / "constraints" / "held.txt").read_text(), re.M)}
    assert {"torch", "opencv-python-headless"} <= set(held)
    assert {name: pins.get(name) for name in held} == held
    torch_pins, _ = read_lock(ROOT / "constraints" / "torch.txt")
    assert torch_pins == {"torch": pins["torch"]} and pins["torch"].endswith("+cpu")
    assert entries(ROOT / "constraints" / "torch.txt")["torch"] == entries(LOCK)["torch"]


def test_the_readme_test_command_is_what_ci_runs_and_installs_from_the_lock():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"Tests \(what `\.ci/run` runs.*?```bash\n(.*?)\n```", readme, re.S).group(1)
    assert command in [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command.startswith("bash constraints/install --dev && python constraints/check_installed.py && ")
    main_job = re.search(r"Main job .*?```bash\n(.*?)\n```", readme, re.S).group(1)
    assert main_job.startswith("bash constraints/install && ")
    install = (ROOT / "constraints" / "install").read_text()
    for lock in ("torch.txt", "ci.txt", "no-deps.txt"):
        assert f"--require-hashes {'' if lock == 'ci.txt' else '--no-deps '}-r constraints/{lock}" in install


def test_an_environment_that_differs_from_the_lock_is_told_apart():
    locked = {"numpy": "2.4.6", "torch": "2.13.0+cpu", "onnx": "1.23.2"}
    present = {"numpy": "2.4.6", "torch": "2.15.0", "lief": "1.0.0", "pip": "23.2.1", "mfr": "0.1.0"}
    assert differences(locked, present) == ["missing: onnx==1.23.2",
                                            "other version: torch==2.15.0 installed, the lock has 2.13.0+cpu",
                                            "not in the lock: lief==1.0.0"]
    assert differences(locked, {**locked, "pip": "26.0", "mfr": "0.1.0"}) == []
