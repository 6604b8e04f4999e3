"""load_image: refusals with clear messages, RGB conversion and downscaling notes."""

import struct
import zlib

import pytest
from PIL import Image

from chatrec.media import MediaError
from chatrec.media.images import LoadedImage, load_image


def _png_header(width: int, height: int) -> bytes:
    """A PNG that only claims its size: enough for PIL to read the header, no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_small_rgba_becomes_rgb_on_white(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGBA", (40, 30), (255, 0, 0, 0)).save(path)
    loaded = load_image(path)
    assert isinstance(loaded, LoadedImage) and loaded.notes == []
    assert loaded.image.mode == "RGB" and loaded.image.size == (40, 30)
    assert loaded.image.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white


def test_large_image_is_downscaled_with_a_note(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (3000, 2000), (10, 120, 200)).save(path, quality=90)
    loaded = load_image(path)
    assert loaded.image.size == (1024, 683)
    assert loaded.notes == ["big.jpg: downscaled from 3000x2000 to 1024x683"]


def test_too_many_megapixels_refused(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (8000, 7000), 128).save(path)  # 56 MP, small on disk because uniform
    with pytest.raises(MediaError, match=r"too large: .*huge.png is 8000x7000 = 56.0 MP \(limit 50 MP\)"):
        load_image(path)


def test_decompression_bomb_gets_our_message(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(30_000, 30_000))  # 900 MP: beyond PIL's own hard limit
    with pytest.raises(MediaError, match="too large.*bomb.png"):
        load_image(path)


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("definitely not a picture\n"), "not an image or corrupt"),
        (lambda p: p.write_bytes(_png_header(64, 64)[:-20] + b"\0" * 20), "not an image or corrupt"),
    ],
    ids=["missing", "empty", "text-named-png", "corrupt"],
)
def test_refusals_name_file_and_problem(tmp_path, write, message):
    path = tmp_path / "photo.png"
    write(path)
    with pytest.raises(MediaError, match=message) as err:
        load_image(path)
    assert "photo.png" in str(err.value)


def test_truncated_jpeg_refused(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.new("RGB", (200, 200), (1, 2, 3)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(MediaError, match="not an image or corrupt.*cut.jpg"):
        load_image(path)
