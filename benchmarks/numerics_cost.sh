#!/usr/bin/env bash
# What pinning the code paths costs: one training (ResNet18 w0.25, 8 epochs) and one IFSGM-20
# sweep (n = 200), timed apart, written to OUT/times.txt. Run it at each level, interleaved:
#   for i in 1 2 3; do python benchmarks/numerics_levels.py --levels portable,native \
#     --files times.txt -- benchmarks/numerics_cost.sh {out}; done
set -euo pipefail
OUT=$1
PY=${PYTHON:-python}
start=$(date +%s.%N)
$PY -m robustbench_lr train --dataset digits --arch resnet18 --width 0.25 --method nlr \
  --epochs 8 --out "$OUT/ck" --device cpu > /dev/null
mid=$(date +%s.%N)
$PY -m robustbench_lr attack --attack ifsgm --checkpoint "$(dirname "$(find "$OUT/ck" -name meta.json)")" \
  --eps 8/255,32/255 --steps 20 --n 200 --device cpu --out "$OUT/r.csv" > /dev/null
end=$(date +%s.%N)
echo "train $(echo "$mid - $start" | bc) attack $(echo "$end - $mid" | bc)" > "$OUT/times.txt"
