"""Faithful image I/O: the only place where files become pixels and pixels become files.

Inside irestore an image is float32 RGB in [0, 1]. `read_image` decodes a file completely
(truncation is an error), applies the EXIF orientation and keeps what is needed to write the
restored pixels back in kind; `write_image` does that through a temporary file that is renamed
into place, so a target is either complete or untouched.

What a round trip keeps (read, then write in the same format):

======  =====  ===  =====  =====  =========  ===
format  depth  ICC  EXIF   alpha  grayscale  dpi
======  =====  ===  =====  =====  =========  ===
PNG     8, 16  yes  yes    yes    yes        yes
JPEG    8      yes  yes    no     yes        yes
WEBP    8      yes  yes    yes    no (RGB)   no
TIFF    8      yes  IFD0   yes    yes        yes
TIFF    16     yes  no     yes    yes [1]    yes
BMP     8      no   no     no     yes        yes
======  =====  ===  =====  =====  =========  ===

- Pixels are exact for PNG, TIFF, BMP and lossless WebP; JPEG and lossy WebP are re-encoded
  (``jpeg_quality``, 4:4:4). A WebP source that was lossless (VP8L) is written lossless.
- EXIF: the Orientation tag is reset to 1 because the pixels are upright; the thumbnail
  (IFD1) and TIFF layout tags are dropped. TIFF output keeps only IFD0 tags (Make, Model,
  DateTime, ...): Pillow's libtiff writer cannot store the Exif/GPS sub-IFDs. 16-bit TIFF is
  written with tifffile, which keeps ICC and dpi but no EXIF. XMP is not carried.
- 16-bit PNG is read with OpenCV and encoded here (zlib, "Up" filter), because OpenCV cannot
  write grey+alpha nor, before 5.0, ICC/EXIF. 16-bit PNG and TIFF stay 16-bit; JPEG, WebP and
  BMP are 8-bit. [1] 16-bit grey+alpha TIFF is written as RGBA (no common reader, Pillow and
  OpenCV included, decodes 16-bit grey+alpha TIFF).
- Palette images are restored in RGB and written back as palette images (an adaptive palette
  with as many colours, undithered) to PNG, BMP and TIFF; with palette transparency they become
  RGBA. 1-bit becomes 8-bit grey. CMYK is converted to RGB with Pillow's plain formula and
  written back to CMYK (JPEG, TIFF) with its inverse; its CMYK ICC profile is dropped.
- An ICC profile is attached only where its colour space (GRAY or RGB) matches what is
  written. Alpha is carried untouched; if the restored image has another size (upscaling),
  alpha is resized to it. JPEG and BMP cannot hold alpha: writing an image that has alpha
  to them is an `ImageError` unless the caller names the format, which drops the alpha.
- `read_image` checks the pixel count itself, before decoding, against ``max_pixels`` (and the
  file size against what such an image can need, before reading it). Pillow's process-wide
  ``MAX_IMAGE_PIXELS`` guard stays as it is for other code; only these reads go past it.
"""

from irestore.io.files import (
    REPORT_FILES_DIR,
    Manifest,
    atomic_path,
    atomic_write_text,
    fsync_dir,
    list_images,
    remove_stale_temps,
)
from irestore.io.image import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, OUTPUT_MAX_PIXELS, Image, ImageError
from irestore.io.read import pixel_count, read_image, verify_image
from irestore.io.tensors import image_to_tensor, tensor_to_rgb
from irestore.io.write import copy_source, unchanged_source, write_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "OUTPUT_MAX_PIXELS",
    "REPORT_FILES_DIR",
    "Image",
    "ImageError",
    "Manifest",
    "atomic_path",
    "atomic_write_text",
    "copy_source",
    "fsync_dir",
    "image_to_tensor",
    "list_images",
    "pixel_count",
    "read_image",
    "remove_stale_temps",
    "tensor_to_rgb",
    "unchanged_source",
    "verify_image",
    "write_image",
]

