#!/usr/bin/env bash
# The README's "Scaling up" commands, run on this machine's CPU with the embedded demo backbones
# (SmolLM2-135M-Instruct + the easy-VQA CLIP tower) instead of a 7B-70B LLM: the same recipe keys,
# the same launchers, a few optimizer steps each. Writes one metrics line per run to $OUT/scaling_runs.md.
#   bash scripts/scaling_runs.sh [OUT]      (default OUT: runs/scaling)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/scaling}
STEPS=${STEPS:-12}
mkdir -p "$OUT"
common=(easyvqa-demo "train.max_steps=$STEPS" train.save_every=0 data.limit=2000 "model.method_config.scales=[64,16]" --no-progress)

run() {  # name, then the command
  local name=$1; shift
  rm -rf "${OUT:?}/$name"
  local start=$SECONDS
  "$@" --output-dir "$OUT/$name" > "$OUT/$name.log" 2>&1 || { echo "$name failed: see $OUT/$name.log"; exit 1; }
  python - "$OUT/$name" "$name" $((SECONDS - start)) "$*" >> "$OUT/scaling_runs.md" <<'EOF'
import json, sys
from pathlib import Path

from safetensors.torch import load_file

run, name, seconds, command = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
weights = load_file(str(run / "adapter" / "ademvl_adapter.safetensors"))
dtypes = sorted({str(w.dtype).replace("torch.", "") for w in weights.values()})
ranks = sorted((run / "rank_weights").glob("rank*.json")) if (run / "rank_weights").is_dir() else []
held = [json.loads(r.read_text())["llm"] for r in ranks]
share = ", ".join(f"{h['local_bytes'] / h['total_bytes']:.3f}" for h in held) or "1 (unsharded)"
print(f"| {name} | `{command.replace('python -m torch.distributed.run', 'torchrun')}` | {len(losses)} | "
      f"{losses[0]:.3f} → {losses[-1]:.3f} | {'/'.join(dtypes)} | {share} | {seconds} |")
EOF
}

echo "| run | command | steps | loss first → last | adapter | LLM bytes held per rank | seconds |" > "$OUT/scaling_runs.md"
echo "|---|---|---|---|---|---|---|" >> "$OUT/scaling_runs.md"
run fp32 ademvl train "${common[@]}"
run bf16 ademvl train "${common[@]}" model.dtype=bfloat16 train.mixed_precision=bf16
run 4bit-checkpointed ademvl train "${common[@]}" model.quantization=4bit train.gradient_checkpointing=true
run fsdp-2-processes python -m torch.distributed.run --nproc_per_node 2 --master_addr 127.0.0.1 \
  -m ademvl.cli train "${common[@]}" train.sharding=fsdp train.gradient_checkpointing=true \
  model.dtype=bfloat16 train.mixed_precision=bf16 train.save_rank_weights=true
cat "$OUT/scaling_runs.md"
