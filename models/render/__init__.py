"""Render: what the child sees and hears: the overlay picture (``overlay``), the object
colours (``palette``) and each object's colour word (``color_names``). Importing this package
is cheap."""
