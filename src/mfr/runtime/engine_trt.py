"""TensorRT backend of the engine interface (TensorRT 10/11 tensor API; 8.6 has the same calls).

One execution context, one CUDA stream, device buffers sized once for the profile's largest batch, and
page-locked (pinned) host buffers of the same sizes, so uploads and downloads are truly asynchronous
DMA. A call copies the batch into the pinned input, uploads it, sets the input shape (checked),
``execute_async_v3`` and downloads the outputs into the pinned outputs. One TensorRT logger serves the
whole process (TensorRT warns when several are created). ``close()`` may be called any number of times.

CI has no TensorRT and no GPU, so there the code is only type-checked against TensorRT 10.13's stubs
and its ``tensorrt`` names against a fixture taken from them; tests marked ``tensorrt`` run it where
TensorRT and a GPU exist (DEVELOPERS.md).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from mfr.errors import EngineError
from mfr.manifest import BatchProfile, Manifest
from mfr.runtime.cuda_memory import DeviceBuffer, PinnedBuffer, create_stream, destroy_stream, synchronize
from mfr.runtime.engine import Engine


def dims(shape: Any) -> list[int]:
    """A TensorRT ``Dims`` as a list (indexing works on every TensorRT version; iteration is not typed)."""
    return [int(shape[i]) for i in range(len(shape))]


@cache
def tensorrt_logger() -> Any:
    """The process's one TensorRT logger (builder, runtime and parser all take this one)."""
    import tensorrt as trt

    return trt.Logger(trt.Logger.WARNING)


class TensorRTEngine(Engine):
    backend = "tensorrt"

    def __init__(self, source: Path, manifest: Manifest, plan: Path, profile: BatchProfile,
                 version_compatible: bool = False, dla_core: int | None = None) -> None:
        import tensorrt as trt

        super().__init__(source, manifest, plan, profile)
        self._buffers: dict[str, DeviceBuffer] = {}
        self._host: dict[str, PinnedBuffer] = {}
        self._stream: Any = None
        self._runtime = trt.Runtime(tensorrt_logger())
        if version_compatible:  # a version-compatible plan carries its own lean runtime
            self._runtime.engine_host_code_allowed = True
        if dla_core is not None:  # a DLA plan runs on the core chosen at load
            if self._runtime.num_DLA_cores <= dla_core:
                raise EngineError(f"{plan}: built for DLA core {dla_core}; this device has "
                                  f"{self._runtime.num_DLA_cores} DLA cores")
            self._runtime.DLA_core = dla_core
        engine = self._runtime.deserialize_cuda_engine(plan.read_bytes())
        if engine is None:
            raise EngineError(f"{plan}: TensorRT could not deserialize the engine (see its log above); "
                              f"rebuild it with mfr-export build-engine")
        self._engine: Any = engine
        self._context: Any = engine.create_execution_context()
        self._stream = create_stream()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [self.input.name]:
            raise EngineError(f"{plan}: engine inputs {inputs} differ from the manifest's [{self.input.name}]")
        self._dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        largest = [profile.max, *dims(engine.get_tensor_profile_shape(self.input.name, 0)[2])[1:]]
        self._set_input_shape(largest)
        for name in names:
            shape = largest if name == self.input.name else dims(self._context.get_tensor_shape(name))
            self._buffers[name] = DeviceBuffer(int(np.prod(shape)) * self._dtypes[name].itemsize)
            self._host[name] = PinnedBuffer((int(np.prod(shape)),), self._dtypes[name])
            if not self._context.set_tensor_address(name, self._buffers[name].ptr):
                raise EngineError(f"{plan}: TensorRT refused the device address of tensor {name}")

    def _set_input_shape(self, shape: list[int]) -> None:
        if not self._context.set_input_shape(self.input.name, shape):
            raise EngineError(f"{self.source}: TensorRT refused input shape {shape} (profile "
                              f"{dims(self._engine.get_tensor_profile_shape(self.input.name, 0)[0])} to "
                              f"{dims(self._engine.get_tensor_profile_shape(self.input.name, 0)[2])})")

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
        pinned = self._host[self.input.name].array[:inputs.size].reshape(inputs.shape)
        pinned[...] = inputs  # converts to the engine's input dtype on the way
        self._buffers[self.input.name].upload(pinned, self._stream)
        return self.infer_bound_input(len(inputs), list(inputs.shape))

    def infer_bound_input(self, count: int, shape: list[int] | None = None) -> dict[str, np.ndarray]:
        """The first ``count`` inputs already in the device input binding (written there on this engine's
        stream, e.g. by the CUDA preprocessing) -> every raw output by name, on the host."""
        self.check_batch_size(count)
        shape = shape or [count, *[int(d) for d in self.input.shape[1:]]]
        self._set_input_shape(shape)
        if not self._context.execute_async_v3(int(self._stream)):
            raise EngineError(f"{self.source}: TensorRT execution failed (see its log above)")
        outputs = {}
        for name in self.output_names:
            out_shape = dims(self._context.get_tensor_shape(name))
            out = self._host[name].array[:int(np.prod(out_shape))].reshape(out_shape)
            self._buffers[name].download(out, self._stream)
            outputs[name] = out
        synchronize(self._stream)
        # float32 copies: the pinned buffers are overwritten by the next call
        return {name: value.astype(np.float32) for name, value in outputs.items()}

    def close(self) -> None:
        buffers: list[DeviceBuffer | PinnedBuffer] = [*self._buffers.values(), *self._host.values()]
        for buffer in buffers:
            buffer.free()
        self._buffers.clear()
        self._host.clear()
        if self._stream is not None:
            destroy_stream(self._stream)
            self._stream = None
        self._context = self._engine = None

