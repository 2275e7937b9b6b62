"""Input walking shared by the commands that look at images without writing them (classify, caption)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from irestore.io import ImageError, image_to_tensor, list_images, read_image


@dataclass(frozen=True)
class InputImage:
    path: Path
    relative: str  # posix path relative to INPUT (the file name for a single file)
    pixels: Tensor | None  # 1x3xHxW in [0, 1]; None when the file could not be decoded
    error: str | None = None


def image_files(input_path: Path) -> tuple[Path, list[Path]]:
    """The root that relative paths start from, and the image files under INPUT."""
    if not input_path.exists():
        raise FileNotFoundError(f"INPUT {input_path}: no such file or folder")
    root = input_path.parent if input_path.is_file() else input_path
    if input_path.is_file():
        return root, [input_path]  # named explicitly: decoded whatever its extension
    return root, list_images(input_path)


def decoded_images(input_path: Path, max_pixels: int, decode: bool = True) -> Iterator[InputImage]:
    """Each image under INPUT, decoded; a file that cannot be read comes with the reason instead."""
    root, files = image_files(input_path)
    for path in files:
        relative = path.relative_to(root).as_posix()
        if not decode:
            yield InputImage(path, relative, None)
            continue
        try:
            yield InputImage(path, relative, image_to_tensor(read_image(path, max_pixels).rgb))
        except ImageError as error:
            yield InputImage(path, relative, None, error.reason)
