"""Reconstruction grids: originals above their reconstructions, one picture (PIL).

Built from uint8 arrays (N, 3, H, W) and written atomically; the run
directory saves one per run and the report stacks them into a sheet.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from qbench import atomic

MIN_TILE = 96  # small crops are upscaled (nearest) so that artefacts stay visible


def _tiles(images: np.ndarray, scale: int) -> list[Image.Image]:
    images = np.asarray(images, dtype=np.uint8)
    tiles = []
    for img in images:
        tile = Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0)))
        if scale > 1:
            tile = tile.resize((tile.width * scale, tile.height * scale), Image.NEAREST)
        tiles.append(tile)
    return tiles


def _scale_for(images: np.ndarray) -> int:
    size = min(images.shape[-2:])
    return max(1, math.ceil(MIN_TILE / size)) if size < MIN_TILE else 1


def image_rows(rows: list[np.ndarray], *, pad: int = 2, background: int = 255) -> Image.Image:
    """Stack rows of images (each (N, 3, H, W), same H and W) into one picture."""
    scale = _scale_for(rows[0])
    tile_rows = [_tiles(r, scale) for r in rows]
    width = max(len(r) for r in tile_rows)
    tw, th = tile_rows[0][0].size
    canvas = Image.new("RGB", (width * (tw + pad) + pad, len(rows) * (th + pad) + pad), (background,) * 3)
    for i, tiles in enumerate(tile_rows):
        for j, tile in enumerate(tiles):
            canvas.paste(tile, (pad + j * (tw + pad), pad + i * (th + pad)))
    return canvas


def recon_grid_image(originals, reconstructions, *, columns: int = 8) -> Image.Image:
    """Rows of ``columns`` originals, each followed by the row of their reconstructions."""
    originals = np.asarray(originals, dtype=np.uint8)
    reconstructions = np.asarray(reconstructions, dtype=np.uint8)
    if originals.shape != reconstructions.shape or originals.ndim != 4:
        raise ValueError(f"grid needs two (N, 3, H, W) arrays of one shape, got {originals.shape} and {reconstructions.shape}")
    rows = []
    for start in range(0, len(originals), columns):
        rows += [originals[start : start + columns], reconstructions[start : start + columns]]
    return image_rows(rows)


def save_png(image: Image.Image, path: str | Path) -> Path:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return atomic.write_bytes(path, buf.getvalue())
