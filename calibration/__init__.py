"""Stage 2: INT8 calibration on real faces (issue 5). Nothing here yet."""
