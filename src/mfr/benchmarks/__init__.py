"""Measurements of what the other stages make: verification accuracy on LFW, masked LFW and MFR2
(``verification``, ``report``, ``compare``), engine latency (``latency``) and preprocessing speed
(``preprocess``). Imports the runtime and the common ground (metrics live in ``mfr.metrics``, which
calibration uses too); nothing imports it but training and the CLI."""
