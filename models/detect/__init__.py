"""Detect: Grounding DINO turns phrases into labelled boxes (``detector``); the vocabulary
everything mode names objects with (``vocabulary``); masks named from its detections
(``naming``). Importing this package is cheap: its modules are imported where they are used."""
