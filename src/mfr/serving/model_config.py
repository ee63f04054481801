"""A Triton model configuration (``config.pbtxt``) written from a package's manifest.

Built as Triton's own protobuf message (``ModelConfig`` from ``tritonclient``'s copy of
``model_config.proto``) and printed in protobuf text format, so a field that Triton's schema does not
have cannot be written. Inputs and outputs come from the manifest (the batch dimension left to
``max_batch_size``, symbolic dimensions as -1); the manifest itself rides along as the parameter
``mfr_manifest``, which is how a client (``mfr.runtime.engine_triton``) learns the preprocessing spec.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from mfr.errors import EngineError
from mfr.manifest import Manifest, TensorInfo
from mfr.runtime.engine_triton import MANIFEST_PARAMETER, PRECISION_PARAMETER

# manifest dtype -> Triton's DataType name
DATA_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int8": "TYPE_INT8", "uint8": "TYPE_UINT8",
              "int32": "TYPE_INT32", "int64": "TYPE_INT64", "bool": "TYPE_BOOL"}
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def model_config_pb2() -> Any:
    """Triton's ModelConfig protobuf module (shipped by tritonclient[grpc]), with a clear error without it."""
    try:
        from tritonclient.grpc import model_config_pb2 as module
    except ImportError:
        raise EngineError("Triton model configurations need tritonclient: pip install 'mfr[triton]'") from None
    return module


@dataclass(frozen=True)
class BatchingOptions:
    """How the server batches and runs one model."""

    max_batch: int = 32  # the largest batch the dynamic batcher forms (Triton's max_batch_size)
    max_queue_delay_us: int = 2000  # how long a request may wait for others to join its batch
    instances: int = 1  # model instances (each a copy of the engine)
    kind: str = "cpu"  # where the instances run: "cpu" or "gpu"

    def check(self) -> BatchingOptions:
        if self.max_batch < 1 or self.max_queue_delay_us < 0 or self.instances < 1 or self.kind not in ("cpu", "gpu"):
            raise EngineError(f"batching options out of range: {self}")
        return self


def check_model_name(name: str) -> str:
    """Triton names a model by its folder: letters, digits, '_', '.', '-'."""
    if not MODEL_NAME.match(name):
        raise EngineError(f"{name!r} is not a usable Triton model name (letters, digits, '_', '.', '-')")
    return name


def _dims(tensor: TensorInfo, where: str) -> list[int]:
    dims = [d if isinstance(d, int) else -1 for d in tensor.shape[1:]]
    if tensor.dtype not in DATA_TYPES:
        raise EngineError(f"{where}: tensor {tensor.name} has dtype {tensor.dtype}, which has no Triton type here")
    return dims


def model_config(name: str, manifest: Manifest, precision: str, options: BatchingOptions, *,
                 backend: str | None = None, platform: str | None = None,
                 parameters: dict[str, str] | None = None, where: str = "") -> Any:
    """The ModelConfig message of one model: ``backend`` (``python``) or ``platform`` (``onnxruntime_onnx``,
    ``tensorrt_plan``), dynamic batching, instance group, and the manifest as a parameter."""
    pb = model_config_pb2()
    options = options.check()
    config = pb.ModelConfig(name=check_model_name(name), max_batch_size=options.max_batch)
    if backend:
        config.backend = backend
    if platform:
        config.platform = platform
    for tensors, field in ((manifest.inputs, config.input), (manifest.outputs, config.output)):
        for tensor in tensors:
            dims = _dims(tensor, where or name)
            entry = field.add(name=tensor.name, data_type=pb.DataType.Value(DATA_TYPES[tensor.dtype]))
            entry.dims.extend(dims)
    config.dynamic_batching.max_queue_delay_microseconds = options.max_queue_delay_us
    group = config.instance_group.add(count=options.instances)
    group.kind = pb.ModelInstanceGroup.KIND_CPU if options.kind == "cpu" else pb.ModelInstanceGroup.KIND_GPU
    values = {MANIFEST_PARAMETER: json.dumps(manifest.to_dict(), sort_keys=True), PRECISION_PARAMETER: precision,
              **(parameters or {})}
    for key, value in values.items():
        config.parameters[key].string_value = value
    return config


def config_text(config: Any) -> str:
    """``config.pbtxt``'s text: the message in protobuf text format."""
    from google.protobuf import text_format

    return str(text_format.MessageToString(config))


def parse_config_text(text: str, where: str) -> Any:
    """A ``config.pbtxt`` read strictly against Triton's schema (an unknown field is an error)."""
    from google.protobuf import text_format

    pb = model_config_pb2()
    try:
        return text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as exc:
        raise EngineError(f"{where}: not a valid Triton model configuration ({exc})") from None
