"""MPG-SAM 2: referring video object segmentation with mask priors and global context.

    from mpg_sam2 import load_pretrained
    pretrained = load_pretrained("path/or/hub-repo")
"""
from mpg_sam2.config import PRESETS, MPGSAM2Config, get_preset
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.pretrained import Pretrained, load_pretrained, save_pretrained

__all__ = ["MPGSAM2", "MPGSAM2Config", "PRESETS", "Pretrained", "get_preset", "load_pretrained", "save_pretrained"]
