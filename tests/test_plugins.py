"""Plug-points are registries: a new entry is one registration, and the CLI offers it without another edit."""

from __future__ import annotations

import json
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
    """A new detector is a decoder file (its ``DETECTOR_HEADS`` line) and one registration line of its
    settings; here the line runs in a fresh interpreter before the CLI is imported, as a plug-in module
    imported by mfr would."""
    script = (
        "from mfr.runtime.detectors import DETECTORS, DetectorEntry, DetectorSettings\n"
        "DETECTORS.register('dummy', DetectorEntry(DetectorSettings(0.5, 0.4), DetectorSettings(0.3, 0.4), 'dummy'))\n"
        "from click.testing import CliRunner\n"
        "from mfr.cli.main import cli\n"
        "for command in (['watch'], ['identify'], ['eval'], ['gallery', 'enroll']):\n"
        "    out = CliRunner().invoke(cli, [*command, '--help']).output\n"
        "    print(command[-1], 'dummy' in out.split('--detector ')[1].split('\\n')[0])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["watch", "True", "identify", "True", "eval", "True", "enroll", "True"]


def _help_offers(option: str, commands: list[list[str]], register: str, cli: str = "mfr.cli.main") -> list[bool]:
    """Whether each command's --help lists 'dummy' among ``option``'s choices, once ``register`` ran in a fresh
    interpreter before the CLI was imported (as a plug-in module imported by mfr would)."""
    script = (
        f"{register}\n"
        "from click.testing import CliRunner\n"
        f"from {cli} import cli\n"
        f"for command in {commands!r}:\n"
        "    out = CliRunner(env={'COLUMNS': '400'}).invoke(cli, [*command, '--help']).output\n"
        f"    print('dummy' in out.split({option + ' '!r})[1].split('--')[0])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [line == "True" for line in result.stdout.split()]


def test_a_search_registered_is_a_choice_of_every_search_option():
    register = ("from mfr.recognition.searches import SEARCHES, SearchEntry\n"
                "SEARCHES.register('dummy', SearchEntry(lambda matrix, gallery: None, 'a dummy'))")
    assert _help_offers("--search", [["watch"], ["identify"]], register) == [True, True]


def test_an_engine_backend_registered_is_a_choice_of_build_engine():
    register = ("from mfr.export.engine_builders import ENGINE_BUILDERS, BuilderEntry\n"
                "ENGINE_BUILDERS.register('dummy', BuilderEntry('model.dummy', ('fp32',), lambda: None, "
                "lambda request: None, lambda request: ('onnx', None), lambda request, job, log: None))")
    assert _help_offers("--backend", [["build-engine"]], register, cli="mfr.cli.export_cli") == [True]


def test_the_shipped_searches_and_backends_are_registered():
    from mfr.export.engine_builders import ENGINE_BUILDERS
    from mfr.recognition.searches import SEARCHES
    from mfr.runtime.engine_backends import ENGINE_BACKENDS

    assert list(SEARCHES) == ["auto", "exact", "faiss-ivfpq", "usearch-hnsw", "pgvector"]
    assert set(ENGINE_BUILDERS) <= set(ENGINE_BACKENDS) == {"tensorrt", "onnxruntime", "openvino"}
    assert not ENGINE_BACKENDS["openvino"].built_here  # imported by mfr-export import-ir, never built


DUMMY_METHOD = """
import json
from dataclasses import dataclass
from pathlib import Path

from mfr.training.fit import TeacherRun, Trainer


@dataclass(frozen=True, kw_only=True)
class DummyConfig(TeacherRun):
    epochs: int = 1


class DummyTrainer(Trainer):
    def __call__(self, log=print, progress=None):
        Path(self.config.out).mkdir(parents=True, exist_ok=True)
        facts = {"epochs": self.config.epochs, "looks": list(self.config.mask_looks)}
        (Path(self.config.out) / "config.json").write_text(json.dumps(facts))
        return facts
"""


def test_a_training_method_registered_gets_a_train_command_with_its_options(tmp_path):
    """A new method is a module (a TeacherRun configuration and a Trainer) and one registry line: mfr train
    lists it, and its command takes every field of its configuration as an option."""
    (tmp_path / "dummy_method.py").write_text(DUMMY_METHOD)
    script = (
        "import sys, json\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from mfr.training.methods import TRAINERS, TrainerEntry\n"
        "TRAINERS.register('dummy', TrainerEntry('dummy_method', 'DummyConfig', 'DummyTrainer', 'A dummy method.'))\n"
        "from click.testing import CliRunner\n"
        "from mfr.cli.main import cli\n"
        "listed = CliRunner().invoke(cli, ['train', '--help']).output\n"
        f"ran = CliRunner().invoke(cli, ['train', 'dummy', '--teacher', 'x', '--out', {str(tmp_path / 'run')!r}, "
        "'--epochs', '3', '--mask-looks', 'templates'])\n"
        "print(json.dumps({'listed': 'A dummy method.' in listed, 'exit': ran.exit_code, 'output': ran.output}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["listed"] and facts["exit"] == 0, facts
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == {"epochs": 3, "looks": ["templates"]}
    assert json.loads(facts["output"]) == {"epochs": 3, "looks": ["templates"]}


def test_the_shipped_training_methods_are_registered_and_load():
    from mfr.training.fit import TeacherRun, Trainer
    from mfr.training.methods import TRAINERS

    assert list(TRAINERS) == ["maskinv", "g2d", "meer"]
    for entry in TRAINERS.values():
        config, trainer = entry.load()
        assert issubclass(config, TeacherRun) and issubclass(trainer, Trainer)
