#!/usr/bin/env bash
# Copy the sample photographs of Debian's opencv-doc package into the analogize photo folder
# ($ANALOGIZE_PHOTOS, default ~/.cache/analogize/photos), where analogize.data.corpus finds them.
# Only photographs are taken (no renders, paintings, logos or calibration charts). Their licences
# are mixed, so they are fetched on each machine and never committed. Running it again is a no-op.
set -euo pipefail

destination="${ANALOGIZE_PHOTOS:-$HOME/.cache/analogize/photos}"
photos=(
    aero1.jpg aero3.jpg aloeL.jpg apple.jpg baboon.jpg board.jpg building.jpg butterfly.jpg
    ela_original.jpg fruits.jpg graf1.png home.jpg left.jpg leuvenA.jpg licenseplate_motion.jpg
    messi5.jpg orange.jpg rubberwhale1.png smarties.png squirrel_cls.jpg stuff.jpg
)

missing=()
for photo in "${photos[@]}"; do
    [[ -f "$destination/$photo" ]] || missing+=("$photo")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "all ${#photos[@]} opencv-doc photos are already in $destination"
    exit 0
fi

for tool in apt-get dpkg-deb; do
    if ! command -v "$tool" >/dev/null; then
        echo "fetch_photos.sh: needs $tool (Debian or Ubuntu); copy the photos into $destination by hand" >&2
        exit 1
    fi
done

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
cd "$workdir"
# apt-get download needs no root, but a machine that never ran apt-get update has no package lists.
if ! apt-get download opencv-doc; then
    echo "apt-get download failed; updating the package lists (needs root) and trying again" >&2
    apt-get update
    apt-get download opencv-doc
fi
dpkg-deb -x opencv-doc_*.deb extracted
source_dir=extracted/usr/share/doc/opencv-doc/examples/data

mkdir -p "$destination"
copied=0
for photo in "${missing[@]}"; do
    if [[ -f "$source_dir/$photo" ]]; then
        # Copy then rename, so an interrupted run never leaves a truncated photo that looks done.
        cp "$source_dir/$photo" "$destination/.$photo.partial"
        mv "$destination/.$photo.partial" "$destination/$photo"
        copied=$((copied + 1))
    else
        echo "fetch_photos.sh: $photo is not in this version of opencv-doc; skipped" >&2
    fi
done
echo "copied $copied photos into $destination"
