"""Loading user images safely: one :class:`MediaError` with a message naming the file and problem."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .files import MediaError, check_file, quiet_error

logger = logging.getLogger(__name__)


@dataclass
class LoadedImage:
    image: Image.Image  # RGB, longest side <= max_side
    notes: list[str] = field(default_factory=list)  # what was changed, for the user


def _open(path: Path) -> Image.Image:
    # PIL's own decompression-bomb guard warns above MAX_IMAGE_PIXELS and raises above twice that,
    # with its own wording; we silence it and apply our limit ourselves from the header size.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombError as e:
            raise MediaError(f"image is too large to load safely: {path.name} ({quiet_error(e, path)})") from e
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise MediaError(f"not an image or corrupt: {path.name} ({quiet_error(e, path)})") from e


def load_image(path: str | os.PathLike, max_side: int = 1024, max_megapixels: float = 50) -> LoadedImage:
    """Open, verify and normalise an image to RGB, downscaling so its longest side <= ``max_side``.

    Refuses (MediaError) missing, empty, non-image or corrupt files and images above
    ``max_megapixels`` (checked from the header, before any pixel is decoded).
    """
    path = Path(path)
    check_file(path, "image")
    with _open(path) as probe:
        w, h = probe.size
        if w * h > max_megapixels * 1e6:
            raise MediaError(
                f"image is too large: {path.name} is {w}x{h} = {w * h / 1e6:.1f} MP (limit {max_megapixels:g} MP)"
            )
        try:
            probe.verify()  # checks structure/CRCs without decoding pixels
        except Exception as e:  # PIL raises many types here (SyntaxError, struct.error, OSError)
            raise MediaError(f"not an image or corrupt: {path.name} ({quiet_error(e, path)})") from e
    notes: list[str] = []
    img = _open(path)  # verify() leaves the object unusable; reopen to decode
    try:
        if getattr(img, "n_frames", 1) > 1:
            notes.append(f"{path.name}: animated image, only the first frame is used")
        if max(w, h) > max_side:
            img.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced scale, much faster
        img.load()
        img = ImageOps.exif_transpose(img)  # phone photos store rotation in EXIF
        img = _to_rgb(img)
    except MediaError:
        raise
    except Exception as e:
        raise MediaError(f"not an image or corrupt: {path.name} ({quiet_error(e, path)})") from e
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if (w, h) != img.size:
        notes.append(f"{path.name}: downscaled from {w}x{h} to {img.size[0]}x{img.size[1]}")
    return LoadedImage(img, notes)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Composite transparency on white (product shots are usually on white), else convert."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")
