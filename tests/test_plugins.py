"""Plug-points are registries: a new entry is one registration, and the CLI offers it without another edit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mfr.errors import MfrError
from mfr.plugins import Registry
from mfr.runtime.detectors import DETECTORS


def test_a_registry_refuses_a_name_taken_and_names_its_choices():
    registry: Registry[int] = Registry("widget")
    registry.register("one", 1)
    with pytest.raises(MfrError, match="a widget named 'one' is registered already"):
        registry.register("one", 2)
    assert registry.entry("one") == 1
    with pytest.raises(MfrError, match="unknown widget 'two'; choose from one"):
        registry.entry("two")


def test_the_shipped_detectors_are_registered():
    assert {"retinaface", "yunet"} <= set(DETECTORS)
    assert DETECTORS["yunet"].package_model is None and DETECTORS["retinaface"].package_model == "retinaface-mnet025"


def test_a_detector_registered_before_the_cli_loads_is_a_choice_of_every_detector_option():
    """A new detector is a file with a factory and one registration line; here the line runs in a fresh
    interpreter before the CLI is imported, as a plug-in module imported by mfr would."""
    script = (
        "from mfr.runtime.detectors import DETECTORS, DetectorEntry\n"
        "DETECTORS.register('dummy', DetectorEntry(lambda package: None, lambda package, size: None))\n"
        "from click.testing import CliRunner\n"
        "from mfr.cli.main import cli\n"
        "for command in (['watch'], ['identify'], ['eval'], ['gallery', 'enroll']):\n"
        "    out = CliRunner().invoke(cli, [*command, '--help']).output\n"
        "    print(command[-1], 'dummy' in out.split('--detector ')[1].split('\\n')[0])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["watch", "True", "identify", "True", "eval", "True", "enroll", "True"]
