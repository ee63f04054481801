"""Stage 4: latency and accuracy-drop measurements (issues 4 and 6). Nothing here yet."""
