"""Image augmentations shared by evaluation and training (numpy + OpenCV only)."""
