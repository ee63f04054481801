"""Build a TensorRT plan from an ONNX model (TensorRT 10/11 API; the 8.6 differences handled where cheap).

FP32: the ONNX model as is. FP16: the builder flag (TensorRT < 11); on TensorRT 11, which removed it, the
package's FP16 model (``mfr.export.fp16``) as a strongly typed network.
INT8, explicit: the symmetric Q/DQ model from ``mfr-export calibrate``, parsed into a strongly typed
network (TensorRT >= 10; 8.6 needs the INT8 flag instead). INT8, implicit (TensorRT 8.6/10.x, e.g.
JetPack 6.0 and 6.1+; deprecated since 10.1, still there through 10.x): the FP32 model, the INT8 flag, and a
calibrator that only replays the package's ``calibration.cache`` under the header this TensorRT writes;
if TensorRT still asks it for batches, it rejected the cache and the build fails with that reason. The
layers the calibration kept in float are pinned to FP32.

CI has no TensorRT: there it is type-checked against TensorRT 10.13's stubs and its ``tensorrt`` names
checked against a fixture; tests marked ``tensorrt`` run it where TensorRT and a GPU exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfr.atomic import write_bytes_atomic
from mfr.errors import EngineError
from mfr.manifest import BatchProfile, TensorInfo
from mfr.runtime.engine_check import version_tuple
from mfr.runtime.engine_trt import tensorrt_logger
from mfr.trt_calibration_cache import for_tensorrt, header

if TYPE_CHECKING:
    import tensorrt as trt


@dataclass(frozen=True)
class TensorRTBuildOptions:
    precision: str  # fp32 | fp16 | int8
    profile: BatchProfile
    spatial: list[list[int]] | None = None  # [min, opt, max] [height, width] if the input's are dynamic
    workspace_mib: int = 1024
    timing_cache: Path | None = None
    dla_core: int | None = None
    version_compatible: bool = False
    implicit_int8_cache: Path | None = None  # calibration.cache: the implicit INT8 path
    fp32_layers: list[str] = field(default_factory=list)  # layers to pin to FP32 on the implicit path
    typed_fp16: bool = False  # the source is the FP16 model: build it strongly typed, without the FP16 flag


def describe_parser_error(error: Any) -> str:
    """One parser error with the ONNX node it concerns (node names exist from TensorRT 10 on)."""
    node = f"node #{error.node()}"
    name = getattr(error, "node_name", None)
    operator = getattr(error, "node_operator", None)
    if name is not None and operator is not None:
        node += f" {name()} ({operator()})"
    return f"{node}: {error.desc()}"


def parse_onnx(builder: trt.Builder, source: Path, strongly_typed: bool, logger: Any) -> tuple[Any, Any]:
    import tensorrt as trt

    flags = 0
    if version_tuple(trt.__version__) < (10,):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = [describe_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineError(f"{source}: TensorRT's ONNX parser failed:\n  " + "\n  ".join(errors))
    return network, parser  # the parser owns weights the network refers to: keep it alive until the build


def replay_calibrator(cache: Path) -> Any:
    """An entropy calibrator that never calibrates: it hands TensorRT the cache written by calibrate, under
    the header the installed TensorRT writes. ``asked_for_batches`` tells afterwards whether TensorRT
    rejected the cache anyway (and calibrated on nothing)."""
    import tensorrt as trt

    data = for_tensorrt(cache, trt.__version__)

    class CacheReplay(trt.IInt8EntropyCalibrator2):
        asked_for_batches = False

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:  # type: ignore[override]
            self.asked_for_batches = True  # a cache TensorRT accepted means it never asks for data
            return None

        def read_calibration_cache(self) -> bytes:
            return data

        def write_calibration_cache(self, cache: Any) -> None:
            return None

    return CacheReplay()


def check_implicit_int8(version: tuple[int, ...], log: Callable[[str], None]) -> None:
    """Implicit INT8 needs the calibrator API: TensorRT 8.x and 10.x have it (deprecated from 10.1)."""
    import tensorrt as trt

    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise EngineError(f"TensorRT {trt.__version__} has no INT8 calibrator API (implicit INT8 is gone): build "
                          f"from the Q/DQ model instead (the default, without --int8-source calibration-cache)")
    if version >= (10, 1):
        log(f"note: implicit INT8 with a calibration cache is deprecated since TensorRT 10.1 (this is "
            f"{trt.__version__}); it still builds, but the Q/DQ model (the default --int8-source) is the way on")


def set_precision(config: trt.IBuilderConfig, network: Any, options: TensorRTBuildOptions, version: tuple[int, ...],
                  log: Callable[[str], None]) -> Any:
    """Builder flags for FP16 / implicit INT8; returns the calibrator, which must outlive the build."""
    import tensorrt as trt

    if options.precision == "fp16" and not options.typed_fp16:
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise EngineError(f"TensorRT {trt.__version__} has no FP16 builder flag: FP16 needs the package's FP16 "
                              f"model (model.fp16.onnx, written by mfr-export onnx)")
        config.set_flag(trt.BuilderFlag.FP16)
    if options.precision == "int8" and options.implicit_int8_cache is None and version < (10,):
        config.set_flag(trt.BuilderFlag.INT8)  # TensorRT 8.6 needs the flag to honour Q/DQ nodes
    if options.implicit_int8_cache is None:
        return None
    config.set_flag(trt.BuilderFlag.INT8)
    calibrator = replay_calibrator(options.implicit_int8_cache)
    config.int8_calibrator = calibrator
    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.name in options.fp32_layers:
            layer.precision = trt.DataType.FLOAT
            for output in range(layer.num_outputs):
                layer.set_output_type(output, trt.DataType.FLOAT)
            pinned += 1
    if options.fp32_layers:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        log(f"pinned {pinned} of {len(options.fp32_layers)} calibration fallback layers to FP32")
    return calibrator


def add_profile(builder: trt.Builder, config: trt.IBuilderConfig, input_name: str, channels: int,
                options: TensorRTBuildOptions, fixed_hw: tuple[int, int] | None) -> None:
    import tensorrt as trt

    profile = builder.create_optimization_profile()
    sizes = options.spatial or ([list(fixed_hw)] * 3 if fixed_hw else None)
    if sizes is None:
        raise EngineError("the model's input has a dynamic height/width: give its range (spatial profile)")
    batches = (options.profile.min, options.profile.opt, options.profile.max)
    shapes = [trt.Dims([b, channels, h, w]) for b, (h, w) in zip(batches, sizes, strict=True)]
    profile.set_shape(input_name, shapes[0], shapes[1], shapes[2])
    config.add_optimization_profile(profile)


def load_timing_cache(config: trt.IBuilderConfig, path: Path | None, log: Callable[[str], None]) -> None:
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise EngineError(f"{path}: TensorRT refused the timing cache (built by another TensorRT or GPU?); "
                          f"delete it or pass another --timing-cache")
    if data:
        log(f"loaded timing cache {path} ({len(data)} bytes)")


def save_timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    write_bytes_atomic(path, bytes(config.get_timing_cache().serialize()))


def build_tensorrt_plan(source: Path, tensor: TensorInfo, options: TensorRTBuildOptions,
                        log: Callable[[str], None]) -> bytes:
    """Parse ``source``, configure the builder as ``options`` say, and return the serialized plan."""
    import tensorrt as trt

    version = version_tuple(trt.__version__)
    logger = tensorrt_logger()
    builder = trt.Builder(logger)
    explicit_int8 = options.precision == "int8" and options.implicit_int8_cache is None
    if options.implicit_int8_cache is not None:
        check_implicit_int8(version, log)
    strongly_typed = (explicit_int8 or options.typed_fp16) and version >= (10,)
    network, parser = parse_onnx(builder, source, strongly_typed, logger)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    add_profile(builder, config, tensor.name, int(tensor.shape[1]), options, tensor.fixed_hw())
    calibrator = set_precision(config, network, options, version, log)
    if options.dla_core is not None:
        if builder.num_DLA_cores <= options.dla_core:
            raise EngineError(f"--dla-core {options.dla_core}: this device has {builder.num_DLA_cores} DLA cores")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    load_timing_cache(config, options.timing_cache, log)
    log(f"building the TensorRT {trt.__version__} engine ({options.precision}"
        f"{', strongly typed' if strongly_typed else ''}); this takes a while")
    plan = builder.build_serialized_network(network, config)
    del parser
    if calibrator is not None and calibrator.asked_for_batches:
        cache = options.implicit_int8_cache
        raise EngineError(f"{cache}: TensorRT {trt.__version__} rejected the calibration cache (sent as "
                          f"{header(trt.__version__)!r}) and asked for calibration batches; its tensor names may "
                          f"not match {source}'s (re-run mfr-export calibrate on this package)")
    del calibrator
    if plan is None:
        raise EngineError(f"{source}: TensorRT could not build the engine (see its log above)")
    if options.timing_cache is not None:
        save_timing_cache(config, options.timing_cache)
        log(f"saved timing cache {options.timing_cache}")
    return bytes(plan)
