"""INT8 calibration on real faces (imports the runtime and the common ground, never the benchmarks).

One set of activation ranges, collected once on aligned (half of them synthetically masked) faces of
people who appear in no evaluation pair, becomes three artefacts: an ONNX Runtime QDQ model, a TensorRT
explicit-quantization QDQ model and a TensorRT calibration cache.
"""
