"""Stage 4: measurements. Verification accuracy now (``verification``, ``metrics``, ``report``);
latency later (issue 6)."""
