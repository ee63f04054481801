"""Face datasets (found under the data root, never shipped): LFW View 2 and MFR2 pairs, MFR2 mask labels."""
