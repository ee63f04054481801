"""Command-line interfaces: ``mfr-export`` (export, calibrate, build-engine, import-ir, Triton repositories)
and ``mfr`` (gallery, identify, watch, serve, thresholds, eval, bench, train, doctor, models, info).

Commands parse arguments and call library code; choice lists read the plug-in registries (detectors,
searches, engine backends, training methods). Heavy imports (torch, onnx) happen inside the command that
needs them, so ``--help`` and the torch-free commands work on a bare runtime install.
"""
