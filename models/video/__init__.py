"""Video: clips read and stored (``io``), objects tracked through them with a SAM 2-family
video model (``track``), the overlay video and the per-frame JSON (``output``).

Importing this package is cheap: PyAV, torch and transformers are imported where used.
"""
