"""The torch-free runtime for deployment: preprocessing (CPU, and the CUDA kernel), detectors (registry
``detectors.DETECTORS``), and the ``Engine`` interface with its backends (registry
``engine_backends.ENGINE_BACKENDS``: ONNX Runtime, TensorRT, OpenVINO, and models served by Triton).

Only numpy, OpenCV and onnxruntime/TensorRT/cuda-python may be imported here: on a Jetson that is
all there is. A test imports this package, builds an engine and embeds faces in a subprocess where
importing torch fails.
"""

from mfr.runtime.align import estimate_similarity, umeyama
from mfr.runtime.image_io import read_image_bgr
from mfr.runtime.preprocess import align_faces, normalize, warp_face

__all__ = ["align_faces", "estimate_similarity", "normalize", "read_image_bgr", "umeyama", "warp_face"]
