"""Exports of a segmented video: videos, PNG masks, COCO RLE JSON and a zip of everything.

Inputs are plain arrays (frames uint8 ``[T, H, W, 3]``, masks ``{expression: bool [T, H, W]}``,
heatmaps ``{expression: float [T, h, w]}``), so the writers do not depend on the model. Every
writer writes under a temporary name and renames when complete.
"""
from .archive import MANIFEST_NAME, write_archive
from .coco_rle import write_coco_rle
from .colors import EXPRESSION_PALETTE, colorize, expression_color, viridis_lut
from .encode import H264Writer, even_size
from .errors import EncodeError, ExportError
from .export_all import EXPORTS, ExportResult, export_all
from .mask_video import write_mask_video
from .overlay_video import write_overlay_video
from .palette_png import write_palette_pngs
from .png_masks import write_png_masks
from .side_by_side import write_side_by_side_video

__all__ = [
    "EXPORTS",
    "EXPRESSION_PALETTE",
    "EncodeError",
    "ExportError",
    "ExportResult",
    "H264Writer",
    "MANIFEST_NAME",
    "colorize",
    "even_size",
    "export_all",
    "expression_color",
    "viridis_lut",
    "write_archive",
    "write_coco_rle",
    "write_mask_video",
    "write_overlay_video",
    "write_palette_pngs",
    "write_png_masks",
    "write_side_by_side_video",
]
