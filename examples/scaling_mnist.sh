#!/usr/bin/env bash
# The must-shows of distributed and resumable training on MNIST (docs/scaling.md). Run from the repo root:
#   AEKIT_DATA_DIR=../shared/data bash examples/scaling_mnist.sh
set -u
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} GLOO_SOCKET_IFNAME=lo
out=${OUT:-runs/scaling}; mkdir -p "$out"
ref=(--dataset mnist --hidden 300,150 --epochs 5 --seed 0 --quiet --json)
wait_for_checkpoint() { until [ -f "$1/config.json" ]; do sleep 0.5; done; }

if [ ! -f "$out/one/config.json" ]; then
  echo "== 1 process vs 2 processes (torchrun, gloo)"
  /usr/bin/time -f "%e s wall" aekit train "${ref[@]}" --out "$out/one" | tail -1
  /usr/bin/time -f "%e s wall" python -m torch.distributed.run --nproc-per-node 2 --rdzv-backend c10d \
    --rdzv-endpoint 127.0.0.1:29611 -m aekit.cli train "${ref[@]}" --out "$out/two" | tail -1
fi
rm -rf "$out/killed" "$out/restart" "$out/diverge"

echo "== kill -9 at a random moment, then resume; compare with the uninterrupted run"
aekit train "${ref[@]}" --checkpoint-every 50 --out "$out/killed" > /dev/null &
pid=$!; wait_for_checkpoint "$out/killed"
sleep "$(python -c 'import random; print(round(random.uniform(0, 20), 1))')"; kill -9 $pid; wait $pid
echo "killed with exit code $?"
aekit train --resume "$out/killed" --quiet | grep resuming
cmp "$out/one/model.safetensors" "$out/killed/model.safetensors" && echo "model.safetensors bit-identical to the uninterrupted run"

echo "== torchrun --max-restarts 1, one worker killed mid-epoch"
python -m torch.distributed.run --nproc-per-node 2 --max-restarts 1 --rdzv-backend c10d \
  --rdzv-endpoint 127.0.0.1:29612 -m aekit.cli train "${ref[@]}" --checkpoint-every 50 --out "$out/restart" \
  > "$out/restart.log" 2> "$out/restart.err" &
tr=$!; wait_for_checkpoint "$out/restart"; sleep 3
victim=$(pgrep -f "aekit.cli train.*$out/restart" | tail -1); echo "killing worker $victim"; kill -9 "$victim"
wait $tr; echo "torchrun exit code $?"; grep -E "resuming|test reconstruction" "$out/restart.log"

echo "== a diverging run (learning rate 10)"
aekit train "${ref[@]}" --lr 10 --checkpoint-every 1 --out "$out/diverge"; echo "exit code $?"
aekit info "$out/diverge" --json | tail -1 | python -c 'import json,sys; d=json.load(sys.stdin); print("previous checkpoint loads: epochs done", d["epochs_done"])'
