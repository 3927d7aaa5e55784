"""Detect: Grounding DINO turns the phrases of find by name into labelled boxes
(``detector``); OmDet-Turbo looks for the whole vocabulary in one pass and for new words on a
photo already seen (``omdet``); the vocabulary everything mode names objects with
(``vocabulary``); masks named from the vocabulary detections (``naming``). Importing this
package is cheap: its modules are imported where they are used."""
