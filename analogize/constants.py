"""Values the command line shows in its help before any heavy module is imported.

The parser needs these defaults and choices at parse time; defining them here, with no imports,
keeps `analogize --help` from loading numpy, OpenCV or torch. images.py and training.py enforce
them and re-export them under their old names. The version is here too, so edit files can record
it without importing the package above them.
"""

__version__ = "0.1.0"

# 64 megapixels covers every camera sensor in common use; past that a file is far more likely to
# be a decompression bomb than a photo, and the float32 copy alone would take 768 MB.
DEFAULT_MAX_PIXELS = 64_000_000

MIXED_PRECISION_MODES = ("no", "bf16", "fp16")
LOG_DESTINATIONS = ("csv", "tensorboard", "none")

# `apply --format` name -> the suffix its results are written with (images.py writes them).
OUTPUT_FORMATS = {"png": ".png", "tiff": ".tif", "jpg": ".jpg", "webp": ".webp"}
# JPEG and WebP quality when none is given: Pillow's own default (75) shows artefacts in skies.
DEFAULT_QUALITY = 95
