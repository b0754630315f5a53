#!/usr/bin/env bash
# Produces the baseline table in BENCHMARKS.md: identity, colormap and pix2pix at 20 shots on every
# built-in edit, 128×128 crops, held-out photos. Prints the machine facts to quote beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash benchmarks/fetch_photos.sh
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/ {print $2}') GiB"
.venv/bin/python -c "import torch; print('torch', torch.__version__, 'threads', torch.get_num_threads())"
/usr/bin/time -v .venv/bin/analogize bench --methods identity,colormap,pix2pix --shots 20 --out "${1:-bench-output}" --quiet
