"""TensorRT backend of the engine interface (TensorRT 10/11 tensor API; 8.6 has the same calls).

One execution context, one CUDA stream, device buffers sized once for the profile's largest batch.
A call uploads the batch, sets the input shape, ``execute_async_v3`` and downloads the outputs.

CI has no TensorRT and no GPU, so there the code is only type-checked against TensorRT 10.13's stubs
and its ``tensorrt`` names against a fixture taken from them; tests marked ``tensorrt`` run it where
TensorRT and a GPU exist (DEVELOPERS.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mfr.errors import EngineError
from mfr.manifest import BatchProfile, Manifest
from mfr.runtime.cuda_memory import DeviceBuffer, create_stream, destroy_stream, synchronize
from mfr.runtime.engine import Engine


def dims(shape: Any) -> list[int]:
    """A TensorRT ``Dims`` as a list (indexing works on every TensorRT version; iteration is not typed)."""
    return [int(shape[i]) for i in range(len(shape))]


def tensorrt_logger() -> Any:
    import tensorrt as trt

    return trt.Logger(trt.Logger.WARNING)


class TensorRTEngine(Engine):
    backend = "tensorrt"

    def __init__(self, source: Path, manifest: Manifest, plan: Path, profile: BatchProfile,
                 version_compatible: bool = False) -> None:
        import tensorrt as trt

        super().__init__(source, manifest, plan, profile)
        self._runtime = trt.Runtime(tensorrt_logger())
        if version_compatible:  # a version-compatible plan carries its own lean runtime
            self._runtime.engine_host_code_allowed = True
        engine = self._runtime.deserialize_cuda_engine(plan.read_bytes())
        if engine is None:
            raise EngineError(f"{plan}: TensorRT could not deserialize the engine (see its log above); "
                              f"rebuild it with mfr-export build-engine")
        self._engine = engine
        self._context = engine.create_execution_context()
        self._stream = create_stream()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [self.input.name]:
            raise EngineError(f"{plan}: engine inputs {inputs} differ from the manifest's [{self.input.name}]")
        self._dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        largest = [profile.max, *dims(engine.get_tensor_profile_shape(self.input.name, 0)[2])[1:]]
        self._context.set_input_shape(self.input.name, largest)
        self._buffers: dict[str, DeviceBuffer] = {}
        for name in names:
            shape = largest if name == self.input.name else dims(self._context.get_tensor_shape(name))
            self._buffers[name] = DeviceBuffer(int(np.prod(shape)) * self._dtypes[name].itemsize)
            if not self._context.set_tensor_address(name, self._buffers[name].ptr):
                raise EngineError(f"{plan}: TensorRT refused the device address of tensor {name}")

    @property
    def input_pointer(self) -> int:
        """Device address of the input binding: GPU preprocessing writes the batch straight here."""
        return self._buffers[self.input.name].ptr

    @property
    def stream(self) -> Any:
        return self._stream

    @property
    def input_dtype(self) -> np.dtype:
        return self._dtypes[self.input.name]

    def _infer_once(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        inputs = inputs.astype(self._dtypes[self.input.name], copy=False)
        self._buffers[self.input.name].upload(inputs, self._stream)
        return self.infer_bound_input(len(inputs), list(inputs.shape))

    def infer_bound_input(self, count: int, shape: list[int] | None = None) -> dict[str, np.ndarray]:
        """The first ``count`` inputs already in the device input binding (written there on this engine's
        stream, e.g. by the CUDA preprocessing) -> every raw output by name, on the host."""
        self.check_batch_size(count)
        shape = shape or [count, *[int(d) for d in self.input.shape[1:]]]
        if not self._context.set_input_shape(self.input.name, shape):
            raise EngineError(f"{self.source}: TensorRT refused input shape {shape}")
        if not self._context.execute_async_v3(int(self._stream)):
            raise EngineError(f"{self.source}: TensorRT execution failed (see its log above)")
        outputs = {}
        for name in self.output_names:
            out = np.empty(dims(self._context.get_tensor_shape(name)), self._dtypes[name])
            self._buffers[name].download(out, self._stream)
            outputs[name] = out
        synchronize(self._stream)
        return {name: value.astype(np.float32, copy=False) for name, value in outputs.items()}

    def close(self) -> None:
        for buffer in self._buffers.values():
            buffer.free()
        self._buffers.clear()
        if getattr(self, "_stream", None) is not None:
            destroy_stream(self._stream)
            self._stream = None
        del self._context, self._engine

