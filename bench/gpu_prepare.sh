#!/usr/bin/env bash
# Run HERE, before the device call (docs/gpu.md): puts into bench/wheelhouse/ the wheels the GPU machine
# lacks (it reaches no registry), built for its Python and x86_64, and checks that what travels fits 64 MiB.
#
#   bench/gpu_prepare.sh           bitsandbytes 0.50.2, the whole wheel (43 MB: every CUDA/ROCm/XPU build)
#   bench/gpu_prepare.sh --trim    the same wheel with only its CPU and CUDA 13.x libraries (about 5 MB);
#                                  enough for the image's torch 2.11+cu130, wrong for a CUDA 12 torch
#
# GPU_PYTHON_VERSION (default 3.12, the image's python3 per the device notes) picks the wheels' Python;
# GPU_EXTRA_WHEELS adds pinned requirements ("name==x.y name2==z"). It also lists every third-party
# distribution bench.gpu_check imports, so a missing one shows up here rather than on the device.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
WH=bench/wheelhouse
PYVER=${GPU_PYTHON_VERSION:-3.12}
LIMIT=$((64 * 1024 * 1024))
TRIM=0
[ "${1:-}" = "--trim" ] && TRIM=1
# shellcheck disable=SC2206
WHEELS=(bitsandbytes==0.50.2 ${GPU_EXTRA_WHEELS:-})

mkdir -p "$WH"
rm -f "$WH"/*.whl
platforms=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${p}_x86_64")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${platforms[@]}" -d "$WH" "${WHEELS[@]}"

if [ "$TRIM" = 1 ]; then
  "$PY" - "$WH" <<'EOF'
"""Drop bitsandbytes' libraries for other CUDA, ROCm and XPU versions; rewrite RECORD to match."""
import re, sys, zipfile
from pathlib import Path

for whl in Path(sys.argv[1]).glob("bitsandbytes-*.whl"):
    drop = re.compile(r"bitsandbytes/libbitsandbytes_(cuda1[0-2]\d|rocm\d+|xpu\d+)\.so$")
    tmp = whl.with_suffix(".tmp")
    with zipfile.ZipFile(whl) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if drop.search(info.filename):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = [ln for ln in data.decode().splitlines() if not drop.search(ln.split(",")[0])]
                data = ("\n".join(lines) + "\n").encode()
            dst.writestr(info, data)
    before = whl.stat().st_size
    tmp.replace(whl)
    print(f"trimmed {whl.name}: {before / 2**20:.1f} MiB -> {whl.stat().st_size / 2**20:.1f} MiB")
EOF
fi

echo "== third-party distributions bench.gpu_check imports (all but the wheelhouse's must be on the GPU image) =="
"$PY" - <<'EOF'
import importlib, importlib.metadata as md, sys
for name in ("torch", "transformers", "tokenizers", "bitsandbytes", "psutil", "accelerate", "safetensors",
             "bench.gpu_check", "worker.probes", "worker.quantization", "worker.backends.hf", "worker.registry"):
    importlib.import_module(name)
top = {m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names) - {"bench", "worker", "__main__"}
dists = md.packages_distributions()
print(" ".join(sorted({d for t in top for d in dists.get(t, [])}, key=str.lower)))
EOF

wheels=$(du -cb "$WH"/*.whl | tail -1 | cut -f1)
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | sort -zu | grep -zv "^$WH/" |
  xargs -0 -r du -cb 2>/dev/null | awk '$2 == "total" {s += $1} END {print s + 0}')
total=$((wheels + tree))
echo "== $WH =="
ls -l "$WH"
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "wheels $(mib "$wheels") + working tree $(mib "$tree") = $(mib "$total") of the 64 MiB a device call carries"
if [ "$total" -ge "$LIMIT" ]; then
  echo "WARNING: over 64 MiB: run bench/gpu_prepare.sh --trim, or carry less" >&2
  exit 1
fi
