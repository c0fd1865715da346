"""Image files to uint8 arrays, decoded no larger than the region that is kept needs.

JPEGs (the bulk of real datasets) are decoded by libjpeg-turbo through simplejpeg, which costs less per image
than going through Pillow's file objects, and are scaled inside the decoder (the DCT keeps 1/2, 1/4 or 1/8
of each block) when the region the crop keeps is at least that many times larger than the output, so a
1,000 px photograph cropped to 224 px is decoded at 500 px: a quarter of the pixels to transform, convert
and resize (the entropy decoding stays whole). Other formats (PNG, BMP, WebP) and the JPEGs simplejpeg
refuses (CMYK, damaged ones it cannot recover) go through Pillow, whose ``draft()`` scales JPEGs the same way.
Images over Pillow's decompression-bomb limit are refused from their header, whichever decoder would read them.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

__all__ = ["Encoded", "reduction"]

JPEG_MAGIC = b"\xff\xd8\xff"
REDUCTIONS = (8, 4, 2, 1)
"""The scales a JPEG decoder takes for free, largest first."""


def reduction(kept_width: float, kept_height: float, size: int) -> int:
    """The largest of 8, 4, 2, 1 by which a region of ``kept_width`` x ``kept_height`` pixels can shrink and
    still cover ``size`` x ``size``: the image is then decoded at that fraction and resized only once."""
    side = min(kept_width, kept_height)
    return next(s for s in REDUCTIONS if side >= s * size or s == 1)


class Encoded:
    """One image file's bytes: its size (from the header, nothing decoded) and :meth:`decode`."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data = data
        self.where = where
        self._pillow: Any = None
        self.width, self.height = self._jpeg_size() or self._pillow_size()
        limit = Image.MAX_IMAGE_PIXELS
        if limit and self.width * self.height > 2 * limit:  # Pillow's own decompression-bomb line, for every decoder
            raise ValueError(
                f"{where}: {self.width}x{self.height} pixels is over {2 * limit:,} (a decompression bomb?)"
            )

    def _jpeg_size(self) -> tuple[int, int] | None:
        if not self.data.startswith(JPEG_MAGIC):
            return None
        try:
            height, width, _, _ = simplejpeg.decode_jpeg_header(self.data)
        except ValueError:  # not one simplejpeg reads: Pillow will say what is wrong with it
            return None
        return int(width), int(height)

    def _pillow_size(self) -> tuple[int, int]:
        try:
            self._pillow = Image.open(io.BytesIO(self.data))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise ValueError(f"{self.where}: not an image Pillow can read: {exc}") from None
        width, height = self._pillow.size
        return int(width), int(height)

    def decode(self, grey: bool, reduce: int = 1) -> np.ndarray:
        """uint8 ``(height, width, 1 or 3)``, scaled down by ``reduce`` (8, 4, 2 or 1) where the format allows
        it; the caller maps its crop by the decoded size."""
        if self._pillow is None:
            try:
                return simplejpeg.decode_jpeg(
                    self.data,
                    colorspace="GRAY" if grey else "RGB",
                    min_height=math.ceil(self.height / reduce),
                    min_width=math.ceil(self.width / reduce),
                    min_factor=reduce,
                )
            except ValueError:
                self._pillow_size()
        return self._decode_pillow(grey, reduce)

    def _decode_pillow(self, grey: bool, reduce: int) -> np.ndarray:
        mode = "L" if grey else "RGB"
        image = self._pillow
        try:
            if reduce > 1:
                image.draft(mode, (self.width // reduce, self.height // reduce))  # JPEG only; others ignore it
            pixels = np.array(image.convert(mode), dtype=np.uint8)
        except (OSError, ValueError, SyntaxError) as exc:
            raise ValueError(f"{self.where}: cannot decode: {exc}") from None
        finally:
            image.close()
        return pixels[:, :, None] if pixels.ndim == 2 else pixels
