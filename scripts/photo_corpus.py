"""Assemble a clean natural-photo corpus with a SOURCES.csv (used by fetch_photos.sh).

    python scripts/photo_corpus.py DEST EXTRACTED_DEBS_DIR

EXTRACTED_DEBS_DIR holds one folder per Debian package, each the `dpkg-deb -x` tree of that
package. Photos are copied byte for byte (no re-encoding) into DEST/<source>/, each copy
atomic, files already present and identical are left alone. Licences come from each
package's machine-readable (DEP-5) /usr/share/doc/<package>/copyright (the stanza whose Files
pattern matches the photo), from the credits README beside photos that ship inside Qt resource
files (gcompris-qt-data, read with scripts/qt_resources.py), from LICENCE_OVERRIDES where the package states a photo's licence
more precisely elsewhere (palapeli's puzzle .desktop files, lxqt-themes' wallpapers/License) and,
for scikit-image, from the notes in its `skimage.data`
docstrings; a kept photo whose licence cannot be determined that way (e.g. gnome-backgrounds'
copyright is free-form, not DEP-5) stops the build. Every file in a package's photo folder is
either kept or listed in EXCLUDED with the reason, after looking at each image (a file that is
neither stops the build, so new files in a package update get looked at); SVG and other
non-raster files are excluded too. Exact duplicates among kept photos stop the build.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from qt_resources import parse_credits, read_resource

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
    # gnome-backgrounds 43.1: light (-l) and dark (-d) variant of each; its copyright file is
    # free-form (not DEP-5) and names older files, so licences below are as its AUTHORS states
    ("gnome-backgrounds", "adwaita-l.webp"):
        "3D render of translucent hexagons (GNOME default), not a photograph; CC-BY-SA-3.0, Jakub Steiner (AUTHORS)",
    ("gnome-backgrounds", "adwaita-d.webp"):
        "dark variant of adwaita-l.webp (same kind of image and licence)",
    ("gnome-backgrounds", "grid-l.webp"):
        "render of a grid of glowing discs, not a photograph; CC-BY-SA-3.0, Jakub Steiner (AUTHORS)",
    ("gnome-backgrounds", "grid-d.webp"):
        "dark variant of grid-l.webp (same kind of image and licence)",
    ("gnome-backgrounds", "licorice-l.webp"):
        "3D render of coloured blocks on a zig-zag surface, not a photograph; no licence stated (copyright, AUTHORS)",
    ("gnome-backgrounds", "licorice-d.webp"):
        "dark variant of licorice-l.webp (same kind of image and licence)",
    ("gnome-backgrounds", "pixels-l.webp"):
        "3D render of floating application icons, not a photograph; CC-BY-SA-3.0, Jakub Steiner (AUTHORS)",
    ("gnome-backgrounds", "pixels-d.webp"):
        "dark variant of pixels-l.webp (same kind of image and licence)",
    ("gnome-backgrounds", "symbolic-l.webp"):
        "flat icon pattern on a plain colour, not a photograph; CC-BY-SA-3.0, Jakub Steiner (AUTHORS 'symbolics*')",
    ("gnome-backgrounds", "symbolic-d.webp"):
        "dark variant of symbolic-l.webp (same kind of image and licence)",
    ("gnome-backgrounds", "truchet-l.webp"):
        "rendered Truchet-tile pattern, not a photograph; no licence stated (copyright, AUTHORS)",
    ("gnome-backgrounds", "truchet-d.webp"):
        "dark variant of truchet-l.webp (same kind of image and licence)",
    ("gnome-backgrounds", "vnc-l.webp"):
        "plain solid colour, 256 px (for remote sessions); no licence stated (copyright, AUTHORS)",
    ("gnome-backgrounds", "vnc-d.webp"):
        "dark variant of vnc-l.webp (same kind of image and licence)",
    ("gnome-backgrounds", "wood-l.webp"):
        "3D render of fluted wooden panels (synthetic grain), not a photograph; CC-BY-SA-3.0, Jakub Steiner (AUTHORS)",
    ("gnome-backgrounds", "wood-d.webp"):
        "dark variant of wood-l.webp (same kind of image and licence)",
    ("gnome-backgrounds", "blobs-l.svg"):
        "SVG vector artwork, not a raster photograph; CC-BY-SA-3.0, Jakub Steiner (AUTHORS)",
    ("gnome-backgrounds", "blobs-d.svg"):
        "SVG vector artwork, not a raster photograph; CC-BY-SA-3.0, Jakub Steiner (AUTHORS)",
    ("gnome-backgrounds", "drool-l.svg"):
        "SVG vector artwork, not a raster photograph; CC-BY-SA-3.0, Jakub Steiner (AUTHORS)",
    ("gnome-backgrounds", "drool-d.svg"):
        "SVG vector artwork, not a raster photograph; CC-BY-SA-3.0, Jakub Steiner (AUTHORS)",
    ("gnome-backgrounds", "dune-l.svg"):
        "SVG vector artwork, not a raster photograph; no licence stated (copyright, AUTHORS)",
    ("gnome-backgrounds", "dune-d.svg"):
        "SVG vector artwork, not a raster photograph; no licence stated (copyright, AUTHORS)",
    ("gnome-backgrounds", "field-l.svg"):
        "SVG vector artwork, not a raster photograph; CC-BY-SA-3.0, Jakub Steiner (AUTHORS)",
    ("gnome-backgrounds", "field-d.svg"):
        "SVG vector artwork, not a raster photograph; CC-BY-SA-3.0, Jakub Steiner (AUTHORS)",
    ("gnome-backgrounds", "oceans.svg"):
        "SVG vector 'warming stripes' graphic, not a raster photograph; CC-BY-4.0, Ed Hawkins (AUTHORS)",
    # ukui-wallpapers 20.04.3 (DEP-5 copyright)
    ("ukui-wallpapers", "2004default.jpg"):
        "3D render of a twisted ribbon on a blue gradient, not a photograph; CC-BY-SA-3.0 (copyright 'Files: *')",
    ("ukui-wallpapers", "calla.png"):
        "flat illustration of a calla lily over gradient shapes, not a photograph; CC-BY-SA-3.0 (copyright 'Files: *')",
    ("ukui-wallpapers", "city.png"):
        "flat geometric illustration, not a photograph; CC-BY-SA-3.0 (copyright 'Files: *')",
    ("ukui-wallpapers", "desert.png"):
        "flat geometric illustration, not a photograph; CC-BY-SA-3.0 (copyright 'Files: *')",
    ("ukui-wallpapers", "firstgeneration.jpg"):
        "cartoon mascot illustration, not a photograph; CC-BY-SA-3.0 (copyright 'Files: *')",
    ("ukui-wallpapers", "fluent-color.png"):
        "abstract soft colour-gradient artwork, not a photograph; CC-BY-SA-3.0 (copyright 'Files: *')",
    ("ukui-wallpapers", "focal-ubuntukylin.png"):
        "isometric '20.04' release graphic on a gradient, not a photograph; CC-BY-SA-3.0 (copyright 'Files: *')",
    ("ukui-wallpapers", "goldfish.png"):
        "stylised vector-style illustration of a goldfish, not a photograph; CC-BY-SA-3.0 (copyright 'Files: *')",
    ("ukui-wallpapers", "rhythm.jpg"):
        "3D render of a flowing ribbon, not a photograph; CC-BY-SA-3.0 (copyright 'Files: *')",
    ("ukui-wallpapers", "rollpaper.png"):
        "flat illustration of rolled paper shapes, not a photograph; CC-BY-SA-3.0 (copyright 'Files: *')",
    ("ukui-wallpapers", "string.jpg"):
        "3D render of a swirl of strings, not a photograph; CC-BY-SA-3.0 (copyright 'Files: *')",
    ("ukui-wallpapers", "the-mouse.jpg"):
        "glowing digital illustration of a mouse head, not a photograph; CC-BY-SA-3.0 (copyright 'Files: *')",
    # sway-backgrounds 1.7 (DEP-5 copyright): one artwork in eight sizes
    ("sway-backgrounds", "Sway_Wallpaper_Blue_2048x1536.png"):
        "Sway logo on a flat blue gradient (artwork), not a photograph; Expat (copyright 'Files: *')",
    ("sway-backgrounds", "Sway_Wallpaper_Blue_2048x1536_Portrait.png"):
        "same Sway logo artwork as Sway_Wallpaper_Blue_2048x1536.png at another size/orientation",
    ("sway-backgrounds", "Sway_Wallpaper_Blue_1920x1080.png"):
        "same Sway logo artwork as Sway_Wallpaper_Blue_2048x1536.png at another size/orientation",
    ("sway-backgrounds", "Sway_Wallpaper_Blue_1366x768.png"):
        "same Sway logo artwork as Sway_Wallpaper_Blue_2048x1536.png at another size/orientation",
    ("sway-backgrounds", "Sway_Wallpaper_Blue_1136x640.png"):
        "same Sway logo artwork as Sway_Wallpaper_Blue_2048x1536.png at another size/orientation",
    ("sway-backgrounds", "Sway_Wallpaper_Blue_1136x640_Portrait.png"):
        "same Sway logo artwork as Sway_Wallpaper_Blue_2048x1536.png at another size/orientation",
    ("sway-backgrounds", "Sway_Wallpaper_Blue_768x1024.png"):
        "same Sway logo artwork as Sway_Wallpaper_Blue_2048x1536.png at another size/orientation",
    ("sway-backgrounds", "Sway_Wallpaper_Blue_768x1024_Portrait.png"):
        "same Sway logo artwork as Sway_Wallpaper_Blue_2048x1536.png at another size/orientation",
    # tuxpaint-data 0.9.28 templates/: photographs by Bill Kendrick (AUTHORS.txt), GPL-2+ (copyright 'Files: *')
    ("tuxpaint-data", "jellyfish.jpg"):
        "soft, out-of-focus jellyfish with a clipped saturated blue channel: not a clean target",
    ("tuxpaint-data", "spiders_web.jpg"):
        "almost all defocused bokeh (the thin web is the only sharp detail): not a clean target",
    ("tuxpaint-data", "mossy_bark.jpg"): "black letterbox bars above and below the photo",
    # lxqt-themes 1.2.0 wallpapers/ (its License file: CC-BY-SA-3.0, LXQt Project Team)
    ("lxqt-themes", "License"): "licence text, not an image",
    ("lxqt-themes", "Butterfly-Kenneth-Wimer.jpg"):
        "photo by KDE artist Kenneth Wimer, not credited in wallpapers/License: may also ship in the KDE "
        "wallpaper set reserved for independent evaluation, so left out",
    ("lxqt-themes", "kde-plasma.png"): "abstract KDE Plasma artwork (Nuno Pinheiro), not a photograph",
    ("lxqt-themes", "lxqt-origami-green.png"): "origami/logo artwork on a gradient, not a photograph",
    ("lxqt-themes", "origami-bright-logo.png"): "origami/logo artwork on a gradient, not a photograph",
    ("lxqt-themes", "origami-dark.png"): "origami/logo artwork on a gradient, not a photograph",
    ("lxqt-themes", "origami-light.png"): "origami/logo artwork on a gradient, not a photograph",
    ("lxqt-themes", "plasma-logo-bright.png"): "logo over abstract rendered facets, not a photograph",
    ("lxqt-themes", "plasma-logo-dark.png"): "logo over abstract rendered facets, not a photograph",
    ("lxqt-themes", "plasma_arch.png"): "Arch Linux logo over rendered smoke, not a photograph",
    ("lxqt-themes", "simple_blue_widescreen.png"): "abstract blue gradient artwork, not a photograph",
    ("lxqt-themes", "triangles-logo.png"): "low-poly triangle artwork with logo, not a photograph",
    ("lxqt-themes", "triangles.png"): "low-poly triangle artwork, not a photograph",
    ("lxqt-themes", "waves-logo.png"): "abstract wave artwork with logo, not a photograph",
    ("lxqt-themes", "waves-purple-logo.jpg"): "abstract wave artwork with logo, not a photograph",
    # gcompris-qt-data 3.1 (photos inside Qt resource files; keys are activity/path in the resource)
    ("gcompris-qt-data", "explore_monuments/usa/castleClinton.webp"):
        "black-and-white archival aerial photograph (film grain, scan): not a clean colour target",
    # palapeli-data 22.12.3 collection/: each photo's .desktop file names its author and licence
    ("palapeli-data", "castle-maintenon.desktop"): "puzzle description (not an image); gives the photo's licence",
    ("palapeli-data", "cincinnati-bridge.desktop"): "puzzle description (not an image); gives the photo's licence",
    ("palapeli-data", "citrus-fruits.desktop"): "puzzle description (not an image); gives the photo's licence",
    ("palapeli-data", "european-honey-bee.desktop"): "puzzle description (not an image); gives the photo's licence",
    ("palapeli-data", "panther-chameleon-female.desktop"):
        "puzzle description (not an image); gives the photo's licence",
}

# Kept Debian photos whose licence is stated more precisely than by the package's DEP-5 copyright
# (which covers them only through a catch-all 'Files: *'): (source, file) -> (licence, copyright)
LICENCE_OVERRIDES: dict[tuple[str, str], tuple[str, str]] = {
    # palapeli-data: X-KDE-PluginInfo-Author/-License/-Website of collection/<name>.desktop
    ("palapeli-data", "castle-maintenon.jpg"):
        ("GFDL", "Eric Pouhier (commons.wikimedia.org/wiki/Image:EPO_2432_wiki.jpg; castle-maintenon.desktop)"),
    ("palapeli-data", "cincinnati-bridge.jpg"):
        ("public domain", "Derek Jensen (commons.wikimedia.org/wiki/Image:Cincinnati-roebling-suspension-bridge.jpg)"),
    ("palapeli-data", "citrus-fruits.jpg"):
        ("public domain", "US Department of Agriculture (commons.wikimedia.org/wiki/Image:Citrus_fruits.jpg)"),
    ("palapeli-data", "european-honey-bee.jpg"):
        ("public domain", "John Severns (commons.wikimedia.org/wiki/Image:European_honey_bee_extracts_nectar.jpg)"),
    ("palapeli-data", "panther-chameleon-female.jpg"):
        ("GFDL", "B. Navez and others (commons.wikimedia.org/wiki/Image:FurciferPardalisFemale.JPG)"),
}
# lxqt-themes: its DEP-5 copyright covers wallpapers/ only by 'Files: *' (LGPL-2.1+); the folder's
# own License file says CC-BY-SA-3.0 (LXQt Project Team, photos credited to stefonarch)
LXQT_PHOTOS = ["Valendas.png", "after-the-rain.jpg", "appleflower.png", "beam.png", "butterfly.png", "cloud.png",
               "drop.png", "flowers.png", "fog.jpg", "this-is-not-windows.jpg"]
LICENCE_OVERRIDES.update({
    ("lxqt-themes", name): ("CC-BY-SA-3.0", "2022 LXQt Project Team; stefonarch (wallpapers/License)")
    for name in LXQT_PHOTOS
})
for name in ("Valendas.png", "cloud.png"):  # not among the photos that License credits to stefonarch
    LICENCE_OVERRIDES["lxqt-themes", name] = ("CC-BY-SA-3.0", "2022 LXQt Project Team (wallpapers/License)")

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
# folders hold artwork and are not read; tuxpaint-data's templates/, lxqt-themes' wallpapers/
# and palapeli-data's puzzle collection/ are the only folders of those packages with photos). gnome-backgrounds, ukui-wallpapers and
# sway-backgrounds currently hold no photographs (every file is in EXCLUDED); they are read so
# that a photo added by a later version is noticed (the build stops until it is looked at).
DEBIAN_SOURCES: dict[str, str] = {
    "mate-backgrounds": "usr/share/backgrounds/mate/nature",
    "lomiri-wallpapers-16.04": "usr/share/backgrounds",
    "gnome-backgrounds": "usr/share/backgrounds/gnome",
    "ukui-wallpapers": "usr/share/backgrounds",
    "sway-backgrounds": "usr/share/backgrounds/sway",
    "tuxpaint-data": "usr/share/tuxpaint/templates",
    "lxqt-themes": "usr/share/lxqt/wallpapers",
    "palapeli-data": "usr/share/palapeli/collection",
}
# Debian packages that ship photos only inside compiled Qt resource files: package -> (resource file,
# folder inside it) -> the credits README in that folder, which states each photo's licence (the
# package's DEP-5 copyright names the photos' pre-conversion .jpg files, or covers them only by
# 'Files: *'). gcompris-qt-data's other activities hold drawings, icons, paintings and the
# edited "spot the difference" pictures of details/, so only these three are read.
QT_RESOURCE_SOURCES: dict[str, dict[tuple[str, str], str]] = {
    "gcompris-qt-data": {
        ("usr/share/gcompris-qt/rcc/explore_monuments.rcc", "/gcompris/src/activities/explore_monuments/resource"):
            "README",
        ("usr/share/gcompris-qt/rcc/erase.rcc", "/gcompris/src/activities/erase/resource"): "README",
        ("usr/share/gcompris-qt/rcc/explore_world_animals.rcc",
         "/gcompris/src/activities/explore_world_animals/resource/animals"): "README",
    },
}
# photos their credits README names with a typo: (package, activity/path) -> the name it uses
CREDITS_SPELLING: dict[tuple[str, str], str] = {
    ("gcompris-qt-data", "explore_monuments/germany/aulaPalatina.webp"): "germany/audaPalatina.webp",
}
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
COLUMNS = ["file", "source", "original_path", "licence", "copyright", "width", "height", "sha256"]


@dataclass(frozen=True)
class Stanza:
    patterns: tuple[str, ...]
    licence: str
    copyright: str


def parse_copyright(path: Path) -> list[Stanza]:
    """The Files stanzas of a machine-readable (DEP-5) debian/copyright file; none for a
    free-form one (its first paragraph has no Format field naming the copyright format)."""
    blocks = path.read_text(encoding="utf-8", errors="replace").split("\n\n")
    if "copyright-format" not in _fields(blocks[0]).get("format", ""):
        return []
    stanzas = []
    for block in blocks:
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
            if (package, photo.name) in EXCLUDED:
                continue
            if photo.suffix.lower() not in PHOTO_SUFFIXES or not photo.is_file():
                sys.exit(f"{package}: {photo.name} is not a raster photo file; add it to EXCLUDED with the reason")
            stanza = licence_for(photo, stanzas)
            if (package, photo.name) in LICENCE_OVERRIDES:
                stanza = Stanza((), *LICENCE_OVERRIDES[package, photo.name])
            if stanza is None:
                sys.exit(f"{package}: no licence for {photo.name} in {copyright_file.name} (not DEP-5, or no "
                         "matching Files stanza); look at it and add it to EXCLUDED with the reason")
            rows.append((package, photo, "/" + photo.relative_to(tree).as_posix(), stanza.licence, stanza.copyright))
    return rows


def _spdx(licence: str) -> str:
    """gcompris's credits spell licences "CC-BY-SA 4.0", "Public Domain": as the DEP-5 files do."""
    licence = re.sub(r"^(CC[\w-]*?)[ -](\d\.\d)$", r"\1-\2", licence.strip())
    return "public domain" if licence.lower() == "public domain" else licence


def qt_resource_photos(extracted: Path) -> list[tuple[str, Path, str, str, str]]:
    """(source, file, original path, licence, copyright) for each kept photo inside a Qt resource
    file; the photos are written byte for byte under ``extracted/<package>.rcc-files``, in a
    folder per activity (two activities both have a giraffe.webp)."""
    rows = []
    for package, folders in QT_RESOURCE_SOURCES.items():
        for (resource, inside), credits_name in folders.items():
            path = extracted / package / resource
            if not path.is_file():
                sys.exit(f"{path}: missing; was {package} extracted into {extracted / package}?")
            files = read_resource(path)
            credits_path = f"{inside}/{credits_name}"
            if credits_path not in files:
                sys.exit(f"{path}: no {credits_path} (the photos' licences)")
            credits = parse_credits(files[credits_path].decode("utf-8", errors="replace"))
            activity = inside.split("/activities/")[1].split("/")[0]
            for name, blob in sorted(files.items()):
                if not name.startswith(inside + "/") or Path(name).suffix.lower() not in PHOTO_SUFFIXES:
                    continue  # sounds, QML, SVG maps and keys, the README itself: not raster images
                relative = name[len(inside) + 1 :]
                key = f"{activity}/{relative}"
                if (package, key) in EXCLUDED:
                    continue
                credited = CREDITS_SPELLING.get((package, key), relative)
                if credited not in credits:
                    sys.exit(f"{package}: no licence for {name} in {credits_path}; look at it and add "
                             f"{key!r} to EXCLUDED with the reason")
                licence, holder = credits[credited]
                out = extracted / f"{package}.rcc-files" / key
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(blob)
                rows.append((package, out, f"{resource}:{name}", _spdx(licence), holder))
    return rows


def corpus_name(photo: Path, source: str, extracted: Path) -> Path:
    """A photo's path under DEST/<source>: its file name, but Qt resource photos keep their
    activity folder (file names repeat across activities)."""
    unpacked = extracted / f"{source}.rcc-files"
    return photo.relative_to(unpacked) if photo.is_relative_to(unpacked) else Path(photo.name)


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
    records, copied, seen = [], 0, {}
    found = debian_photos(extracted) + qt_resource_photos(extracted) + skimage_photos()
    for source, photo, original, licence, holder in found:
        digest = sha256(photo)
        if digest in seen:
            sys.exit(f"{original} is a byte-identical duplicate of {seen[digest]}; add one of them to EXCLUDED")
        seen[digest] = original
        target = dest / source / corpus_name(photo, source, extracted)
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
