"""PyTorch checkpoint -> verified ONNX model package (``model.onnx`` + ``manifest.json``), and a package
-> an engine for this machine (``engine_package``). Imports the runtime, to check what it builds the way
the runtime will run it; the runtime never imports it."""
