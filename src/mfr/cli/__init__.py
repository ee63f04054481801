"""Command-line interfaces: ``mfr-export`` (export, calibrate, build-engine) and ``mfr`` (models, eval, bench).

Commands only parse arguments and call library code; heavy imports (torch, onnx) happen inside the
command that needs them, so ``--help`` and the torch-free commands work on a bare runtime install.
"""
