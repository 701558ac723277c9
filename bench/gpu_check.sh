#!/usr/bin/env bash
# The one command for the lent GPU machine (docs/gpu.md): bash bench/gpu_check.sh [gpu_check options]
# Installs the carried wheels it lacks, then runs bench.gpu_check in BUDGET s (default 420) and prints its table.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/test-output/gpu-check}
BUDGET=${BUDGET:-420}
mkdir -p "$OUT"
need=()
for w in bench/wheelhouse/*.whl; do
  [ -e "$w" ] || continue
  f=$(basename "$w")
  "$PY" -c 'import importlib.metadata as m,sys; sys.exit(m.version(sys.argv[1])!=sys.argv[2])' \
    "$(echo "$f" | cut -d- -f1)" "$(echo "$f" | cut -d- -f2)" 2>/dev/null || need+=("$w")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "${need[@]}" || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.mem,driver_version --format=csv \
  >"$OUT/nvidia-smi.csv" 2>&1
"$PY" -c 'import torch,bitsandbytes as b; print("torch",torch.__version__,"cuda",torch.version.cuda,"bnb",b.__version__)'
timeout -k 10 $((${BUDGET%.*} + 45)) "$PY" -m bench.gpu_check --out "$OUT" --budget-seconds "$BUDGET" "$@" 2>&1 |
  tee "$OUT/gpu_check.log"
rc=${PIPESTATUS[0]}
echo "== bench.gpu_check exit $rc; report in $OUT =="
cat "$OUT/gpu_check.md" 2>/dev/null
exit "$rc"
