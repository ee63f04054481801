import json

import pytest

from mfr.errors import SpecError
from mfr.registry import MODELS
from mfr.spec import ARCFACE_TEMPLATE_112, PreprocessSpec


@pytest.mark.parametrize("name", list(MODELS))
def test_every_registered_spec_survives_json(name):
    spec = MODELS[name].spec
    assert PreprocessSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_recognition_specs_carry_the_arcface_template():
    assert MODELS["mobilefacenet"].spec.template == ARCFACE_TEMPLATE_112
    assert MODELS["mobilefacenet"].spec.embedding_dim == 128
    assert MODELS["iresnet50"].spec.embedding_dim == 512
    assert MODELS["retinaface-mnet025"].spec.template is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"color_order": "RGBA"}, "color_order"),
        ({"std": [1, 0, 1]}, "std"),
        ({"mean": [1, 2]}, "mean"),
        ({"scale": -1}, "scale"),
        ({"template": [[1, 2]] * 4}, "template"),
        ({"input_size": None}, "template"),
        ({"extra_field": 1}, "unknown fields"),
    ],
)
def test_bad_spec_fields_are_named(change, message):
    data = {**MODELS["mobilefacenet"].spec.to_dict(), **change}
    with pytest.raises(SpecError, match=message):
        PreprocessSpec.from_dict(data)


def test_missing_spec_fields_are_listed():
    data = MODELS["mobilefacenet"].spec.to_dict()
    del data["mean"]
    with pytest.raises(SpecError, match=r"missing fields \['mean'\]"):
        PreprocessSpec.from_dict(data)
