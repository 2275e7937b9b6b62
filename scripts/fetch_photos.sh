#!/usr/bin/env bash
# Build a clean natural-photo corpus for training (irestore train --dataset folder:DEST).
#
#   scripts/fetch_photos.sh DEST
#
# Sources: the nature/ photos of the Debian package mate-backgrounds, the photos of
# lomiri-wallpapers-16.04, the photo templates of tuxpaint-data, the photo wallpapers of
# lxqt-themes, the puzzle photos of palapeli-data, the monument and animal photos that
# gcompris-qt-data ships inside Qt resource files, and scikit-image's bundled photographs. The Debian packages
# gnome-backgrounds, ukui-wallpapers and sway-backgrounds are read too, but every file they
# ship today is artwork, a 3D render or SVG (none is a photograph), so all are excluded; they
# are checked so that a photo in a later version is noticed. Debian packages are fetched with
# `apt-get download` and unpacked with `dpkg-deb -x`; nothing is installed. Artwork and
# non-photographs are excluded (list with reasons in scripts/photo_corpus.py). DEST/SOURCES.csv
# records each file's source, original path, licence, size and checksum.
# Idempotent: a rerun re-checks every file and copies only what is missing or different.
# Needs: apt-get and dpkg-deb (Debian/Ubuntu), a Python with Pillow and scikit-image
# (set PYTHON=..., default: python).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DEST" >&2
    exit 2
fi
dest=$1
python=${PYTHON:-python}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
packages=(mate-backgrounds lomiri-wallpapers-16.04 gnome-backgrounds ukui-wallpapers sway-backgrounds
          tuxpaint-data lxqt-themes palapeli-data gcompris-qt-data)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt-get download runs as _apt where it can

cd "$work"
if ! apt-get download "${packages[@]}" >/dev/null 2>"$work/apt.log"; then
    if grep -q "Unable to locate package" "$work/apt.log" && [[ $EUID -eq 0 ]]; then
        apt-get update -qq
        apt-get download "${packages[@]}" >/dev/null
    else
        cat "$work/apt.log" >&2
        echo "error: cannot download ${packages[*]} (run 'apt-get update' as root first?)" >&2
        exit 1
    fi
fi
for package in "${packages[@]}"; do
    deb=$(ls "$work"/"${package}"_*.deb)
    mkdir -p "$work/tree/$package"
    dpkg-deb -x "$deb" "$work/tree/$package"
done
cd - >/dev/null

mkdir -p "$dest"
"$python" "$here/photo_corpus.py" "$dest" "$work/tree"
