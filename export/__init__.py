"""Stage 1: PyTorch checkpoint -> verified ONNX model package (``model.onnx`` + ``manifest.json``)."""
