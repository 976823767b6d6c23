"""Contact sheets: several images in a labelled grid, one picture to look at (a sweep's preview)."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

#: The longest side of each cell, and the height of the label band above it.
CELL_SIDE = 256
LABEL_HEIGHT = 18


def contact_sheet(images: list[Image.Image], labels: list[str], columns: int) -> Image.Image:
    """`images` in rows of `columns`, each scaled to fit CELL_SIDE (aspect kept) under its label."""
    width = max(image.width for image in images)
    height = max(image.height for image in images)
    scale = min(1.0, CELL_SIDE / max(width, height))
    cell = (max(1, round(width * scale)), max(1, round(height * scale)))
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * cell[0], rows * (cell[1] + LABEL_HEIGHT)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        left, top = (index % columns) * cell[0], (index // columns) * (cell[1] + LABEL_HEIGHT)
        draw.text((left + 4, top + 3), label, fill="black", font=font)
        thumb = image.convert("RGB")
        thumb.thumbnail(cell, Image.Resampling.LANCZOS)
        sheet.paste(thumb, (left, top + LABEL_HEIGHT))
    return sheet
