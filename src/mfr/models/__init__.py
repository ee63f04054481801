"""PyTorch model definitions (export and training only; the runtime never imports this package).

Each module's parameter names match a published checkpoint layout exactly, so real checkpoints load
with ``strict=True``.
"""
