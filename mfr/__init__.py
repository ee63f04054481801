"""mfr: masked face recognition at the edge.

The shared core lives here (preprocessing spec, model registry, manifest, datasets, CLI); the
pipeline stages are the sub-packages ``mfr.export``, ``mfr.calibration``, ``mfr.runtime`` and
``mfr.benchmarks``. Importing ``mfr`` never imports torch: the runtime must work on boards where
only numpy, OpenCV and onnxruntime/TensorRT are installed.
"""

__version__ = "0.1.0"
