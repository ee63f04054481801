"""Face datasets (found under the data root, never shipped): LFW now, MFR2 and masked LFW later."""
