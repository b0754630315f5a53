"""Report folders: a metrics JSON, a contact sheet PNG and an HTML page that shows both.

Used by `evaluate`, `bench` and `demo`, so every report looks the same.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .atomic import write_text_atomic
from .images import fit_within, save_image, to_pil

LABEL_HEIGHT = 18
GAP = 4


@dataclass
class SheetRow:
    label: str
    images: list[np.ndarray]  # one per column, any sizes


def contact_sheet(columns: list[str], rows: list[SheetRow], tile: int = 192) -> np.ndarray:
    """A grid of images: one labelled column per entry of `columns`, one row per `SheetRow`.
    Each image is fitted inside a tile×tile box so photos of any size line up; a row is as tall
    as its tallest picture, so landscape photos leave no empty bands."""
    thumbnails = [[to_pil(fit_within(image, tile)) for image in row.images] for row in rows]
    row_heights = [max((thumb.height for thumb in row), default=0) for row in thumbnails]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    titles = [wrap_to_width(title, tile, measure) for title in columns]  # long method labels would overlap
    header_height = LABEL_HEIGHT * max(len(lines) for lines in titles)
    width = GAP + len(columns) * (tile + GAP)
    height = header_height + GAP + sum(LABEL_HEIGHT + row_height + GAP for row_height in row_heights)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for column, lines in enumerate(titles):
        for line_number, line in enumerate(lines):
            draw.text((GAP + column * (tile + GAP), 3 + line_number * LABEL_HEIGHT), line, fill=(0, 0, 0))
    top = header_height + GAP
    for row, row_thumbnails, row_height in zip(rows, thumbnails, row_heights):
        draw.text((GAP, top), row.label, fill=(60, 60, 60))
        for column, thumbnail in enumerate(row_thumbnails):
            left = GAP + column * (tile + GAP) + (tile - thumbnail.width) // 2
            sheet.paste(thumbnail, (left, top + LABEL_HEIGHT))
        top += LABEL_HEIGHT + row_height + GAP
    return np.asarray(sheet, dtype=np.float32) / 255.0


def wrap_to_width(text: str, width: int, draw: ImageDraw.ImageDraw) -> list[str]:
    """`text` cut into lines no wider than `width` pixels in the default font (at any character:
    method labels such as `fewshot[steps=300,affine_output=true]` have no spaces)."""
    lines = [""]
    for character in text:
        if lines[-1] and draw.textlength(lines[-1] + character) > width:
            lines.append("")
        lines[-1] += character
    return lines


def write_report(
    out_dir: Path,
    title: str,
    metrics: dict,
    table_header: list[str],
    table_rows: list[list[object]],
    sheets: dict[str, np.ndarray],
    notes: str = "",
) -> Path:
    """Write metrics.json, one PNG per contact sheet and index.html into `out_dir`; return the page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2, default=_json_number) + "\n")
    figures = []
    for name, sheet in sheets.items():
        filename = f"{name}.png"
        save_image(sheet, out_dir / filename)
        figures.append(
            f'<figure><img src="{html.escape(filename)}" alt="{html.escape(name)}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>"
        )
    header = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in table_header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_cell(cell))}</td>" for cell in row) + "</tr>"
        for row in table_rows
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
figure {{ margin: 1rem 0; }} img {{ max-width: 100%; }}
</style></head>
<body><h1>{html.escape(title)}</h1>
<p>{html.escape(notes)}</p>
<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>
{''.join(figures)}
</body></html>
"""
    page_path = out_dir / "index.html"
    write_text_atomic(page_path, page)
    return page_path


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def format_cell(cell: object) -> str:
    if isinstance(cell, float):
        if math.isinf(cell):
            return "inf"
        return f"{cell:.3f}" if abs(cell) < 10 else f"{cell:.2f}"
    return str(cell)


def _json_number(value: object) -> object:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
