"""Masks on disk: the one home of every mask file format the package reads or writes.

- :mod:`.rle`: COCO run-length encoding (MeViS' ``mask_dict.json``, COCO ``instances.json``,
  the COCO RLE export), pycocotools-compatible;
- :mod:`.polygon`: COCO polygons rasterised as pycocotools does (RefCOCO);
- :mod:`.label_map`: per-object masks merged into one label map (later objects win);
- :mod:`.png`: binary mask PNGs, label (palette) PNGs and the DAVIS palette.

Exports, evaluation, the dataset readers and the app import these modules directly; the
folder layouts around the files (which PNG goes where) stay with their users.
"""
