"""Deterministic demo data: the items of the demo project and their small original files.

Item ``n`` of a resource depends only on ``(seed, resource, n)``: its own ``random.Random`` is
seeded with a hash of that triple and only ``random()`` is drawn from it (the one method Python
promises to keep reproducible across versions). Original files are built byte by byte here (PNG
with stored deflate blocks, JSON, text), never by a compressor whose output could vary, so the
recorded sha256 of every file is the same on every machine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import struct
import zlib
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEMO_PROJECT_ID",
    "RESOURCES",
    "SeedItem",
    "generate_item",
]

#: The resources the v2 API serves, in URL spelling.
RESOURCES = ("tasks", "assignments", "ground-truths")
#: The id of the one demo project every seeded item belongs to.
DEMO_PROJECT_ID = 1

_CLASSES = ("car", "person", "bicycle", "truck", "traffic_light", "dog")
_TASK_STATUS = ("pending", "in_progress", "completed", "completed")
_ASSIGNMENT_STATUS = ("submitted", "approved", "approved", "rejected")
_SPLITS = ("train", "train", "train", "val", "test")
_ANNOTATORS = 24
_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_IMAGE_SIDE = 12  # pixels: the PNG originals are 12x12 RGB, a little over 500 bytes


@dataclass(frozen=True, slots=True)
class SeedItem:
    """One generated item: its v2 JSON body (without the ``original`` block) and its file."""

    id: int
    data: dict[str, Any]
    content: bytes
    content_type: str
    filename: str


class _Dice:
    """Draws from one item's private generator using ``random()`` only."""

    def __init__(self, seed: int, resource: str, item_id: int) -> None:
        key = f"{seed}\x1f{resource}\x1f{item_id}".encode()
        self._rng = random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))

    def unit(self) -> float:
        return self._rng.random()

    def integer(self, low: int, high: int) -> int:
        """An int in ``[low, high]``."""
        span = high - low
        value = int(self._rng.random() * (span + 1))
        return low + (value if value <= span else span)

    def pick(self, options: tuple[str, ...]) -> str:
        return options[self.integer(0, len(options) - 1)]

    def bbox(self, width: int, height: int) -> list[int]:
        w = self.integer(width // 20, width // 3)
        h = self.integer(height // 20, height // 3)
        return [self.integer(0, width - w), self.integer(0, height - h), w, h]

    def objects(self, width: int, height: int, most: int) -> list[dict[str, Any]]:
        return [
            {"class": self.pick(_CLASSES), "bbox": self.bbox(width, height)}
            for _ in range(self.integer(1, most))
        ]

    def timestamp(self, item_id: int) -> str:
        moment = _EPOCH + dt.timedelta(minutes=7 * item_id, seconds=self.integer(0, 419))
        return (
            f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
        )


_SHIFTED = [bytes((c + 9 * s) % 256 for s in range(2 * _IMAGE_SIDE)) for c in range(256)]


def _diagonal(colour: list[int]) -> bytes:
    strip = bytearray(6 * _IMAGE_SIDE)
    for channel, value in enumerate(colour):
        strip[channel::3] = _SHIFTED[value]
    return bytes(strip)


def _png(dice: _Dice) -> bytes:
    """A small valid RGB PNG: a gradient with a coloured box, stored without compression."""
    side = _IMAGE_SIDE
    base = [dice.integer(0, 255) for _ in range(3)]
    box_colour = [dice.integer(0, 255) for _ in range(3)]
    x0, y0 = dice.integer(0, side - 4), dice.integer(0, side - 4)
    # Pixel (x, y) is its colour shifted by 9 * (x + y): one RGB "diagonal" strip per colour,
    # so row y of the picture is a slice of the strip.
    plain, boxed = _diagonal(base), _diagonal(box_colour)
    rows = []
    for y in range(side):
        row = bytearray(plain[3 * y : 3 * (y + side)])
        if y0 <= y < y0 + 4:
            row[3 * x0 : 3 * (x0 + 4)] = boxed[3 * (y + x0) : 3 * (y + x0 + 4)]
        rows.append(b"\x00" + row)  # each row starts with filter type 0
    raw = b"".join(rows)
    # A zlib stream of one stored (uncompressed) deflate block: header, block, adler32.
    stream = (
        b"\x78\x01\x01"
        + struct.pack("<HH", len(raw), 0xFFFF ^ len(raw))
        + raw
        + struct.pack(">I", zlib.adler32(raw))
    )

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")
    )


def _task(dice: _Dice, item_id: int) -> SeedItem:
    width, height = dice.pick(("1920x1080", "1280x720", "1024x768")).split("x")
    labels = sorted({dice.pick(_CLASSES) for _ in range(dice.integer(1, 3))})
    data = {
        "name": f"task-{item_id:05d}",
        "image": {
            "file_name": f"img_{item_id:05d}.png",
            "width": int(width),
            "height": int(height),
        },
        "labels": labels,
        "status": dice.pick(_TASK_STATUS),
        "priority": dice.integer(1, 5),
        "created_at": dice.timestamp(item_id),
    }
    return SeedItem(item_id, data, _png(dice), "image/png", f"img_{item_id:05d}.png")


def _assignment(dice: _Dice, item_id: int) -> SeedItem:
    annotator = dice.integer(1, _ANNOTATORS)
    annotations = dice.objects(1920, 1080, 4)
    data = {
        "task_id": item_id,
        "annotator": {"id": 100 + annotator, "name": f"annotator-{annotator:02d}"},
        "status": dice.pick(_ASSIGNMENT_STATUS),
        "annotations": annotations,
        "duration_seconds": round(20 + dice.unit() * 280, 1),
        "submitted_at": dice.timestamp(item_id),
    }
    export = {"assignment_id": item_id, "format": "synapse-annotations/1", "objects": annotations}
    content = json.dumps(export, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    return SeedItem(item_id, data, content, "application/json", f"assignment_{item_id:05d}.json")


def _ground_truth(dice: _Dice, item_id: int) -> SeedItem:
    objects = dice.objects(1920, 1080, 5)
    data = {
        "task_id": item_id,
        "dataset": "demo-ground-truth-v1",
        "split": dice.pick(_SPLITS),
        "classes": sorted({obj["class"] for obj in objects}),
        "objects": objects,
        "reviewed": dice.unit() < 0.8,
    }
    # YOLO-style label file: class index and the box normalised to the 1920x1080 frame.
    lines = []
    for obj in objects:
        x, y, w, h = obj["bbox"]
        lines.append(
            f"{_CLASSES.index(obj['class'])} {(x + w / 2) / 1920:.6f} {(y + h / 2) / 1080:.6f} "
            f"{w / 1920:.6f} {h / 1080:.6f}"
        )
    names = " ".join(f"{index}={name}" for index, name in enumerate(_CLASSES))
    header = (
        f"# synapse demo ground truth {item_id} ({data['dataset']}, split {data['split']})\n"
        f"# YOLO boxes: class x_center y_center width height, normalised to 1920x1080\n"
        f"# classes: {names}\n"
    )
    content = (header + "\n".join(lines) + "\n").encode()
    return SeedItem(item_id, data, content, "text/plain; charset=utf-8", f"gt_{item_id:05d}.txt")


def generate_item(seed: int, resource: str, item_id: int) -> SeedItem:
    """Build item ``item_id`` (1-based) of ``resource``.

    Task ``n`` has assignment ``n`` and ground truth ``n``.

    Raises ``ValueError`` for an unknown resource.
    """
    dice = _Dice(seed, resource, item_id)
    if resource == "tasks":
        return _task(dice, item_id)
    if resource == "assignments":
        return _assignment(dice, item_id)
    if resource == "ground-truths":
        return _ground_truth(dice, item_id)
    raise ValueError(f"unknown resource {resource!r}; expected one of {', '.join(RESOURCES)}")
