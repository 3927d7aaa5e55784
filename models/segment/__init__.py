"""Segment: MobileSAM's image embedding, box and point prompts and everything mode
(``segmenter``), and the masks they return (``mask``: a photo-size mask kept as the bits of its
tight box; ``rle``: COCO run-length encoding). Importing this package is cheap."""
