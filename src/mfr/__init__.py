"""mfr: masked face recognition at the edge.

The common ground lives here (preprocessing spec, model registry, manifest, plug-in registries, datasets,
masks, metrics, errors) and imports no stage. The stages are sub-packages, each importing only the ground
and the stages before it: ``mfr.runtime`` (engines, detectors, preprocessing), ``mfr.serving`` (a Triton
server for the models), ``mfr.recognition`` (gallery, search, decisions, the camera loop), ``mfr.models``
(the torch networks), ``mfr.export``, ``mfr.calibration``, ``mfr.benchmarks``, ``mfr.training``; the CLI
(``mfr.cli``) sits on top of them all (tests/test_layers.py checks the order). Importing ``mfr``, the
runtime, serving or recognition never imports torch: they run on boards where only numpy, OpenCV and
onnxruntime/TensorRT are installed.
"""

__version__ = "0.1.0"
