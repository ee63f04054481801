"""Serving mfr's engines from NVIDIA Triton Inference Server, for sites whose cameras share GPU servers.

- ``model_config``: a Triton model configuration (``config.pbtxt``) from a package's manifest;
- ``repository``: the model repositories: one whose Python backend runs mfr's own ``Engine`` (what
  ``mfr serve`` starts), one for a full Triton install's ONNX Runtime or TensorRT backend
  (``mfr-export triton``);
- ``python_model``: the model class Triton's Python backend runs in its stub process;
- ``server``: the ``tritonserver`` process (found, started, checked ready, stopped gracefully).

The client side is an ``Engine`` backend of the runtime (``mfr.runtime.engine_triton``), so cameras and
evaluations use a server exactly like a local engine. Torch-free, built on the runtime and the common
ground only.
"""
