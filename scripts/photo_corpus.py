"""Assemble a clean natural-photo corpus with a SOURCES.csv (used by fetch_photos.sh).

    python scripts/photo_corpus.py DEST EXTRACTED_DEBS_DIR

EXTRACTED_DEBS_DIR holds one folder per Debian package, each the `dpkg-deb -x` tree of that
package. Photos are copied byte for byte (no re-encoding) into DEST/<source>/, each copy
atomic, files already present and identical are left alone. Licences come from each
package's machine-readable /usr/share/doc/<package>/copyright (the stanza whose Files pattern
matches the photo) and, for scikit-image, from the notes in its `skimage.data` docstrings.
Everything not kept is listed in EXCLUDED with the reason, after looking at each image.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

# (source, file name) -> why it is not a clean natural photograph for the corpus
EXCLUDED: dict[tuple[str, str], str] = {
    ("lomiri-wallpapers-16.04", "umang_by_Abhishek_Mudgal.jpg"): "digital abstract colour-gradient artwork",
    ("lomiri-wallpapers-16.04", "analogpattern_by_Peter_Nerlich.jpg"):
        "colour-graded close-up of a wall texture, soft and noisy at full size: not a clean target",
    ("mate-backgrounds", "Storm.jpg"): "panning shot: strong motion blur over the lower half, not a clean target",
    ("scikit-image", "cell.png"): "quantitative phase (holography) image, not a photograph",
    ("scikit-image", "chessboard_GRAY.png"): "synthetic pattern",
    ("scikit-image", "chessboard_RGB.png"): "synthetic pattern",
    ("scikit-image", "clock_motion.png"): "deliberately motion-blurred photograph: not a clean target",
    ("scikit-image", "color.png"): "synthetic colour wheel",
    ("scikit-image", "horse.png"): "clip-art silhouette",
    ("scikit-image", "hubble_deep_field.jpg"): "astronomical composite in false colour",
    ("scikit-image", "ihc.png"): "microscopy (stained tissue)",
    ("scikit-image", "logo.png"): "logo artwork",
    ("scikit-image", "microaneurysms.png"): "medical image crop (102 px)",
    ("scikit-image", "moon.png"): "licence not stated by scikit-image; low-contrast test image",
    ("scikit-image", "motorcycle_left.png"): "licence not stated by scikit-image (Middlebury 2014 stereo)",
    ("scikit-image", "motorcycle_right.png"): "licence not stated; near-duplicate stereo view of motorcycle_left",
    ("scikit-image", "page.png"): "scanned document with uneven illumination",
    ("scikit-image", "phantom.png"): "synthetic Shepp-Logan phantom",
    ("scikit-image", "retina.jpg"): "medical fundus photograph (circular mask on black)",
    ("scikit-image", "text.png"): "small test image of text for corner detection",
}

# scikit-image photographs kept: (licence, author or origin) as its docstrings state
SKIMAGE_PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut.png": ("public domain", "NASA"),
    "coffee.png": ("CC0-1.0", "Rachel Michetti"),
    "chelsea.png": ("CC0-1.0", "Stefan van der Walt"),
    "rocket.jpg": ("public domain", "SpaceX"),
    "camera.png": ("CC0-1.0", "Lav Varshney"),
    "coins.png": ("no known copyright restrictions", "Brooklyn Museum"),
    "brick.png": ("CC0-1.0", "CC0Textures (Bricks25)"),
    "grass.png": ("CC0-1.0", "linolafett (DeviantArt)"),
    "gravel.png": ("CC0-1.0", "CC0Textures (Gravel04)"),
}

# Debian package -> the folder whose photos are used (mate-backgrounds' abstract/ and desktop/
# folders hold artwork and are not read)
DEBIAN_SOURCES: dict[str, str] = {
    "mate-backgrounds": "usr/share/backgrounds/mate/nature",
    "lomiri-wallpapers-16.04": "usr/share/backgrounds",
}
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
COLUMNS = ["file", "source", "original_path", "licence", "copyright", "width", "height", "sha256"]


@dataclass(frozen=True)
class Stanza:
    patterns: tuple[str, ...]
    licence: str
    copyright: str


def parse_copyright(path: Path) -> list[Stanza]:
    """The Files stanzas of a machine-readable (DEP-5) debian/copyright file."""
    stanzas = []
    for block in path.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        fields = _fields(block)
        if "files" in fields and "license" in fields:
            licence = fields["license"].splitlines()[0].strip()
            holder = " ".join(line.strip() for line in fields.get("copyright", "").splitlines())
            stanzas.append(Stanza(tuple(fields["files"].split()), licence, holder))
    return stanzas


def _fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    name = None
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and name:
            fields[name] += "\n" + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            fields[name] = value.strip()
    return fields


def licence_for(installed: Path, stanzas: list[Stanza]) -> Stanza | None:
    """The last stanza (DEP-5 rule) with a Files pattern for this installed file.

    Patterns are source-tree paths (``nature/Aqua.jpg``, ``16.04/x.jpg``, ``debian/*``) and the
    file is installed elsewhere, so a pattern matches on the file name, provided the name is
    spelled out, or the wildcard pattern has no folder, or its folder is the file's folder.
    """
    def matches(pattern: str) -> bool:
        folder, _, name = pattern.rpartition("/")
        if not fnmatch.fnmatch(installed.name, name):
            return False
        explicit = not any(c in name for c in "*?[")
        return explicit or not folder or folder.rpartition("/")[2] == installed.parent.name

    found = [s for s in stanzas if any(matches(p) for p in s.patterns)]
    return found[-1] if found else None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_atomic(source: Path, target: Path) -> bool:
    """Copy unless an identical file is already there; returns whether it copied."""
    if target.is_file() and target.stat().st_size == source.stat().st_size and sha256(target) == sha256(source):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return True


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.verify()  # a truncated download would stop the corpus here, not in training
    with Image.open(path) as im:
        return im.size


def debian_photos(extracted: Path) -> list[tuple[str, Path, str, str, str]]:
    """(source, file, original path, licence, copyright) for each kept Debian photo."""
    rows = []
    for package, folder in DEBIAN_SOURCES.items():
        tree = extracted / package
        copyright_file = tree / "usr/share/doc" / package / "copyright"
        if not copyright_file.is_file():
            sys.exit(f"{copyright_file}: missing; was {package} extracted into {tree}?")
        stanzas = parse_copyright(copyright_file)
        for photo in sorted((tree / folder).iterdir()):
            if photo.suffix.lower() not in PHOTO_SUFFIXES or (package, photo.name) in EXCLUDED:
                continue
            stanza = licence_for(photo, stanzas)
            rows.append((package, photo, "/" + photo.relative_to(tree).as_posix(),
                         stanza.licence if stanza else "unknown", stanza.copyright if stanza else ""))
    return rows


def skimage_photos() -> list[tuple[str, Path, str, str, str]]:
    import skimage

    data = Path(skimage.__file__).parent / "data"
    rows = []
    for name, (licence, holder) in SKIMAGE_PHOTOS.items():
        photo = data / name
        if not photo.is_file():
            sys.exit(f"{photo}: missing from the installed scikit-image {skimage.__version__}")
        rows.append(("scikit-image", photo, f"skimage/data/{name} (scikit-image {skimage.__version__})", licence, holder))
    return rows


def main(dest: Path, extracted: Path) -> None:
    records, copied = [], 0
    for source, photo, original, licence, holder in debian_photos(extracted) + skimage_photos():
        target = dest / source / photo.name
        copied += copy_atomic(photo, target)
        width, height = image_size(target)
        records.append({"file": target.relative_to(dest).as_posix(), "source": source, "original_path": original,
                        "licence": licence, "copyright": holder, "width": width, "height": height,
                        "sha256": sha256(target)})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    tmp = dest / ".SOURCES.csv.tmp"
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, dest / "SOURCES.csv")
    megapixels = sum(r["width"] * r["height"] for r in records) / 1e6
    licences: dict[str, int] = {}
    for r in records:
        licences[r["licence"]] = licences.get(r["licence"], 0) + 1
    print(f"{len(records)} photos ({copied} copied now), {megapixels:.1f} MP in {dest}")
    for licence, count in sorted(licences.items(), key=lambda kv: -kv[1]):
        print(f"  {count:3d}  {licence}")
    print(f"excluded {len(EXCLUDED)} files (see EXCLUDED in {Path(__file__).name})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
