"""Write data/images/test.jpg: a small test card, with a baseline JPEG encoder in pure Python.

Run from the repository root: `python -m ops.make_sample_jpeg [OUTPUT]`. Deterministic: the same
code gives the same bytes, so the committed file can be regenerated and compared. No imaging
library: a baseline sequential JPEG (JFIF, 8-bit YCbCr, no subsampling) written with struct,
quantized with the standard tables of the JPEG standard (ITU T.81, Annex K) at quality 90 and
coded with its Annex K luminance Huffman tables for all three components.

The picture, 192 x 128: seven colour bars over a grey ramp and a sweep through the hues, a white
ring over them (edges in every direction, so that a decoder's mistake shows). It is
the image of the original design's example, `curl http://localhost:8000/image/test.jpg`.
"""
from __future__ import annotations

import colorsys
import math
import struct
import sys
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "data" / "images" / "test.jpg"
WIDTH, HEIGHT = 192, 128
QUALITY = 90
# Seven bars, whose edges fall inside 8x8 blocks, as on a broadcast test card.
BARS = [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192)]
BARS_HEIGHT, RAMP_HEIGHT = 80, 24  # the hue sweep takes the rest
CIRCLE = (WIDTH / 2, HEIGHT / 2, 44, 2.5)  # centre x, y, radius, thickness: a white ring over it all

# Annex K.1: quantization tables for a quality of 50, in natural (row by row) order.
LUMA_QUANT = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
              14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
              18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
              49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
CHROMA_QUANT = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32
# Annex K.3: the luminance Huffman tables, as (number of codes of each length 1..16, symbols).
DC_COUNTS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
DC_SYMBOLS = list(range(12))
AC_COUNTS = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 125]
_AC_SHORT = [0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
             0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
             0x24, 0x33, 0x62, 0x72, 0x82]
# The 16-bit codes go to every other AC symbol (run << 4 | size, size 1..10), in increasing order.
AC_SYMBOLS = _AC_SHORT + sorted({r << 4 | s for r in range(16) for s in range(1, 11)} - set(_AC_SHORT))

ZIGZAG = sorted(range(64), key=lambda i: (i // 8 + i % 8, i // 8 if (i // 8 + i % 8) % 2 else i % 8))
DCT = [[(math.sqrt(0.125) if u == 0 else 0.5) * math.cos((2 * x + 1) * u * math.pi / 16) for x in range(8)]
       for u in range(8)]


def draw() -> list[list[tuple[int, int, int]]]:
    """The test card as rows of (r, g, b)."""
    rows = []
    cx, cy, radius, thickness = CIRCLE
    for y in range(HEIGHT):
        row = []
        for x in range(WIDTH):
            if abs(math.hypot(x + 0.5 - cx, y + 0.5 - cy) - radius) < thickness / 2:
                row.append((255, 255, 255))
            elif y < BARS_HEIGHT:
                row.append(BARS[x * len(BARS) // WIDTH])
            elif y < BARS_HEIGHT + RAMP_HEIGHT:
                grey = round(255 * x / (WIDTH - 1))
                row.append((grey, grey, grey))
            else:
                r, g, b = colorsys.hsv_to_rgb(x / WIDTH, 1.0, 0.9)
                row.append((round(255 * r), round(255 * g), round(255 * b)))
        rows.append(row)
    return rows


def scaled(table: list[int], quality: int) -> list[int]:
    """A quantization table for a quality of 1..100, scaled as the IJG's libjpeg does."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(255, max(1, (q * scale + 50) // 100)) for q in table]


def huffman_codes(counts: list[int], symbols: list[int]) -> dict[int, tuple[int, int]]:
    """symbol -> (code, length), the canonical codes of Annex C."""
    codes, code, at = {}, 0, 0
    for length, count in enumerate(counts, start=1):
        for _ in range(count):
            codes[symbols[at]] = (code, length)
            code, at = code + 1, at + 1
        code <<= 1
    return codes


class BitWriter:
    """Entropy-coded bits, most significant first, with a 0x00 stuffed after every 0xFF byte."""

    def __init__(self) -> None:
        self.out, self.acc, self.bits = bytearray(), 0, 0

    def write(self, value: int, length: int) -> None:
        self.acc, self.bits = (self.acc << length) | (value & ((1 << length) - 1)), self.bits + length
        while self.bits >= 8:
            self.bits -= 8
            byte = (self.acc >> self.bits) & 0xFF
            self.out += b"\xff\x00" if byte == 0xFF else bytes([byte])
        self.acc &= (1 << self.bits) - 1

    def flush(self) -> bytes:
        if self.bits:
            self.write(0x7F, 8 - self.bits)  # pad with one-bits
        return bytes(self.out)


def magnitude(value: int) -> tuple[int, int]:
    """(size category, the value's bits) as F.1.2.1 codes a coefficient."""
    size = abs(value).bit_length()
    return size, value if value >= 0 else value + (1 << size) - 1


def encode_block(block: list[float], quant: list[int], previous_dc: int, writer: BitWriter,
                 dc: dict, ac: dict) -> int:
    """FDCT, quantize and code one 8x8 block (level-shifted samples, row by row); returns its DC."""
    rows = [[sum(DCT[v][x] * block[y * 8 + x] for x in range(8)) for v in range(8)] for y in range(8)]
    coefficients = [sum(DCT[u][y] * rows[y][v] for y in range(8)) for u in range(8) for v in range(8)]
    zz = [round(coefficients[i] / quant[i]) for i in ZIGZAG]
    size, bits = magnitude(zz[0] - previous_dc)
    writer.write(*dc[size])
    writer.write(bits, size)
    run = 0
    for value in zz[1:]:
        if value == 0:
            run += 1
            continue
        while run > 15:
            writer.write(*ac[0xF0])  # sixteen zeros
            run -= 16
        size, bits = magnitude(value)
        writer.write(*ac[run << 4 | size])
        writer.write(bits, size)
        run = 0
    if run:
        writer.write(*ac[0x00])  # end of block
    return zz[0]


def jpeg(pixels: list[list[tuple[int, int, int]]], quality: int = QUALITY) -> bytes:
    """A baseline JFIF of the rows (each side a multiple of 8)."""
    height, width = len(pixels), len(pixels[0])
    assert width % 8 == 0 and height % 8 == 0, "no partial blocks"
    quants = [scaled(LUMA_QUANT, quality), scaled(CHROMA_QUANT, quality)]
    dc, ac = huffman_codes(DC_COUNTS, DC_SYMBOLS), huffman_codes(AC_COUNTS, AC_SYMBOLS)
    planes = [[[0.0] * width for _ in range(height)] for _ in range(3)]
    for y, row in enumerate(pixels):
        for x, (r, g, b) in enumerate(row):  # JFIF's YCbCr, level-shifted by 128
            planes[0][y][x] = 0.299 * r + 0.587 * g + 0.114 * b - 128
            planes[1][y][x] = -0.168736 * r - 0.331264 * g + 0.5 * b
            planes[2][y][x] = 0.5 * r - 0.418688 * g - 0.081312 * b
    writer, previous = BitWriter(), [0, 0, 0]
    for by in range(0, height, 8):
        for bx in range(0, width, 8):
            for c in range(3):  # one block of each component per MCU
                block = [planes[c][by + y][bx + x] for y in range(8) for x in range(8)]
                previous[c] = encode_block(block, quants[min(c, 1)], previous[c], writer, dc, ac)

    def segment(marker: int, body: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body

    return b"".join([
        b"\xff\xd8",  # SOI
        segment(0xE0, b"JFIF\0" + struct.pack(">BBBHHBB", 1, 1, 0, 1, 1, 0, 0)),
        segment(0xDB, b"".join(bytes([t]) + bytes(quants[t][i] for i in ZIGZAG) for t in (0, 1))),
        segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + bytes([1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1])),
        segment(0xC4, bytes([0x00, *DC_COUNTS, *DC_SYMBOLS, 0x10, *AC_COUNTS, *AC_SYMBOLS])),
        segment(0xDA, bytes([3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0])),
        writer.flush(),
        b"\xff\xd9",  # EOI
    ])


def main(argv: list[str]) -> int:
    output = Path(argv[0]) if argv else OUTPUT
    data = jpeg(draw())
    output.write_bytes(data)
    print(f"wrote {output} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
