#!/usr/bin/env bash
# The prepared GPU check, run from the bundle folder (make gpu-bundle): at most ~8 minutes, results as JSON
# in $OUT (default ./out). On a machine without CUDA it runs the same steps on the CPU, smaller, to show the
# bundle works end to end.
#   1. fmnist doctor
#   2. a short training of each network on the device, its loss checked to fall
#   3. fmnist bench train in fp32 and bf16 (and the PyTorch peer on the same torch when it can run here)
#   4. as much of the full profiles as fits: the CNN's 50 epochs, the ResNet's 10, the transfer run
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$here/out}"
mkdir -p "$OUT"
fm="$here/fmnist"
budget="${BUDGET_SECONDS:-480}"
start=$(date +%s)
left() { echo $(( budget - ($(date +%s) - start) )); }
log() { echo "[gpu-check $(( $(date +%s) - start )) s] $*" | tee -a "$OUT/gpu-check.log"; }
status=0

"$fm" doctor --json > "$OUT/doctor.json" || { log "doctor failed"; exit 1; }
"$fm" doctor | tee -a "$OUT/gpu-check.log"
cuda=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["devices"]["cuda_available"]))' "$OUT/doctor.json")
if [ "$cuda" = 1 ]; then device=cuda; profile=full; else device=cpu; profile=smoke; fi
log "device $device (profile $profile for the long runs)"

# 2. A short training of each network: the loss must fall.
for model in cnn4 resnet; do
  "$fm" --device "$device" train --model "$model" --profile smoke --epochs 2 --out "$OUT/short-$model" --json \
    > "$OUT/short-$model.json" 2> "$OUT/short-$model.err" || { log "short $model training failed"; status=1; continue; }
  python3 - "$OUT/short-$model/history.json" "$model" <<'PY' | tee -a "$OUT/gpu-check.log" || status=1
import json, sys
h = json.load(open(sys.argv[1]))["epochs"]
first, last = h[0]["train_loss"], h[-1]["train_loss"]
ok = last < first
print(f"{sys.argv[2]}: training loss {first:.4f} -> {last:.4f} over {len(h)} epochs: {'falls' if ok else 'DOES NOT FALL'}")
sys.exit(0 if ok else 1)
PY
done

# 3. Throughput in fp32 and bf16, and the PyTorch peer on this machine's torch.
for model in cnn4 resnet; do
  for precision in fp32 bf16; do
    "$fm" --device "$device" --precision "$precision" bench train --model "$model" --json \
      > "$OUT/bench-$model-$precision.json" 2>> "$OUT/gpu-check.log" || { log "bench $model $precision failed"; status=1; }
  done
  if [ "$device" = cpu ]; then
    python3 "$here/peer/bench_pytorch.py" --model "$model" --json > "$OUT/peer-$model.json" 2>> "$OUT/gpu-check.log" \
      || log "the PyTorch peer did not run here"
  fi
done
python3 - "$OUT" <<'PY' | tee -a "$OUT/gpu-check.log"
import glob, json, os, sys
for f in sorted(glob.glob(os.path.join(sys.argv[1], "bench-*.json"))):
    j = json.load(open(f))
    print(f"throughput {os.path.basename(f)[6:-5]}: {j['images_per_s_noaug']:.0f} images/s, "
          f"{j['images_per_s_aug']:.0f} with augmentation (batch {j['batch_size']}, {j['device']})")
for f in sorted(glob.glob(os.path.join(sys.argv[1], "peer-*.json"))):
    j = json.load(open(f))
    print(f"PyTorch {j['torch']} peer {j['model']}: {j['images_per_s_noaug']:.0f} images/s (batch {j['batch_size']})")
PY

# 4. The long runs, as far as the budget allows (each is resumable: a later call continues it).
for run in "train --model cnn4" "train --model resnet" "transfer --backbone efficientnet-lite0"; do
  name="$(echo "$run" | awk '{print $NF}')"
  if [ "$(left)" -lt 60 ]; then log "no time left for $name ($profile)"; continue; fi
  timeout "$(( $(left) - 20 ))" "$fm" --device "$device" --precision auto $run --profile "$profile" --resume \
    --out "$OUT/$profile-$name" --json > "$OUT/$profile-$name.json" 2>> "$OUT/gpu-check.log"
  rc=$?
  if [ $rc -eq 0 ]; then log "$name ($profile): $(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("test accuracy", j.get("test_accuracy"))' "$OUT/$profile-$name.json")"
  else log "$name ($profile) stopped (rc $rc): out of time or failed; rerun to continue"; fi
done
log "done in $(( $(date +%s) - start )) s; results in $OUT"
exit $status
