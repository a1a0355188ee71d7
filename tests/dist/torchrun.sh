#!/usr/bin/env bash
# ddpm-train under torchrun (and its own --nproc-per-node): world-size invariance, one run
# directory, a SIGKILLed rank ends the job (never a hang), and --max-restarts with
# --resume auto finishes the run. Exit 77 = skipped (says why).
source "$(dirname "$0")/common.sh" "$@"
/usr/bin/python3 -c "import torch.distributed.run" 2>/dev/null || skip "no torchrun: /usr/bin/python3 has no torch (Debian: apt-get install python3-torch)"
has_gloo || skip "this ddpm-train was built without c10d/Gloo (no Gloo headers)"
# torchrun 1.13 spells its options with '_', 2.x accepts both.
# scripts/torchrun-compat.py: Debian 12's torchrun crashes on Python 3.11 (see the script).
TORCHRUN=(/usr/bin/python3 "$SRC/scripts/torchrun-compat.py" --nnodes=1 --nproc_per_node=2 --no_python)
# Under torchrun every rank is a client of the agent's TCPStore, whose wire protocol changed in
# torch 2 (a handshake): a ddpm-train built on the pip LibTorch 2.x cannot join Debian's torchrun
# 1.13 agent. Then the torchrun parts are skipped (said below) and the rest runs.
train_lib=$(ldd "$TRAIN" | awk '/libtorch_cpu/ {print $3}')
if [[ $train_lib == *site-packages* ]]; then
  train_torch=$(sed -n "s/^__version__ = '\([0-9]*\).*/\1/p" "$(dirname "$train_lib")/../version.py")
else
  train_torch=1  # Debian's LibTorch, the one python3-torch's torchrun runs on
fi
agent_torch=$(/usr/bin/python3 -c 'import torch; print(torch.__version__.split(".")[0])')
AGENT_OK=1
if [[ $train_torch != "$agent_torch" ]]; then
  AGENT_OK=0
  echo "NOTE: torchrun's torch $agent_torch and this ddpm-train's LibTorch $train_torch speak different TCPStore protocols: the torchrun parts are skipped, the others run"
fi

echo "== 1 process, batch 8, 24 steps"
"$TRAIN" "${COMMON[@]}" --steps 24 --save-every 8 --run-dir "$WORK/one" >"$WORK/one.log" 2>&1 || { cat "$WORK/one.log"; fail "single run"; }
losses "$WORK/one" >"$WORK/one.txt"

if (( AGENT_OK )); then
echo "== torchrun, 2 ranks x 4"
(cd "$WORK" && "${TORCHRUN[@]}" --master_port="$(free_port)" "$TRAIN" "${COMMON[@]}" --steps 24 --save-every 8 \
   --run-dir "$WORK/two") >"$WORK/two.log" 2>&1 || { cat "$WORK/two.log"; fail "torchrun run"; }
losses "$WORK/two" >"$WORK/two.txt"
same_losses "$WORK/one.txt" "$WORK/two.txt" 1e-5 || fail "torchrun losses differ from the single process's"
[[ -f $WORK/two/checkpoints/ckpt-00000024.pt ]] || fail "no final checkpoint"
dirs=$(cd "$WORK" && find . -mindepth 1 -maxdepth 1 -type d | sort | tr '\n' ' ')
[[ $dirs == "./one ./two " ]] || fail "expected the run directories one and two only, found: $dirs"
grep -q "hidden behind backward" "$WORK/two.log" || fail "no all-reduce overlap figure in the log"
fi

echo "== --nproc-per-node 2 (ddpm-train's own launcher)"
"$TRAIN" "${COMMON[@]}" --steps 24 --save-every 8 --run-dir "$WORK/own" --nproc-per-node 2 >"$WORK/own.log" 2>&1 || { cat "$WORK/own.log"; fail "--nproc-per-node run"; }
losses "$WORK/own" >"$WORK/own.txt"
same_losses "$WORK/one.txt" "$WORK/own.txt" 1e-5 || fail "--nproc-per-node losses differ"

echo "== a checkpoint of world size 2 resumes at world size 1"
mkdir -p "$WORK/back/checkpoints"
cp "$WORK/own/checkpoints/ckpt-00000008.pt" "$WORK/back/checkpoints/"
cp "$WORK/own/config.toml" "$WORK/back/"
head -n 8 "$WORK/own/metrics.jsonl" >"$WORK/back/metrics.jsonl"
"$TRAIN" --resume --run-dir "$WORK/back" --steps 24 --threads 1 >"$WORK/back.log" 2>&1 || { cat "$WORK/back.log"; fail "resume at world size 1"; }
losses "$WORK/back" >"$WORK/back.txt"
same_losses "$WORK/one.txt" "$WORK/back.txt" 1e-5 || fail "resumed losses differ"

if (( AGENT_OK )); then
echo "== SIGKILL of rank 1 under torchrun: the job ends, non-zero, within 60 s"
(cd "$WORK" && exec "${TORCHRUN[@]}" --master_port="$(free_port)" "$TRAIN" "${COMMON[@]}" --steps 100000 \
   --save-every 5 --run-dir "$WORK/kill") >"$WORK/kill.log" 2>&1 &
job=$!
wait_for_file "$WORK/kill/checkpoints/ckpt-00000005.pt" 120 || { cat "$WORK/kill.log"; fail "no checkpoint"; }
pid=$(rank_pid "$WORK/kill" 1) || fail "rank 1 not found"
kill -KILL "$pid"; start=$SECONDS
code=0; wait "$job" || code=$?
(( code != 0 )) || fail "torchrun exited 0 after a rank was killed"
(( SECONDS - start <= 60 )) || fail "took $((SECONDS - start)) s to end"
echo "   ended in $((SECONDS - start)) s with exit $code"
fi

echo "== SIGKILL of rank 1 without an agent: rank 0 ends by itself, naming the lost rank"
port=$(free_port)
for r in 0 1; do
  RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$TRAIN" "${COMMON[@]}" --steps 100000 --save-every 5 --run-dir "$WORK/bare" >"$WORK/bare$r.log" 2>&1 &
  eval "pid$r=$!"
done
wait_for_file "$WORK/bare/checkpoints/ckpt-00000005.pt" 120 || { cat "$WORK/bare0.log"; fail "no checkpoint"; }
kill -KILL "$pid1"; start=$SECONDS
code=0; wait "$pid0" || code=$?
(( code != 0 )) || fail "rank 0 exited 0 after rank 1 was killed"
(( SECONDS - start <= 60 )) || fail "rank 0 took $((SECONDS - start)) s to end"
grep -q "rank 1" "$WORK/bare0.log" || { cat "$WORK/bare0.log"; fail "rank 0's error does not name rank 1 (exit $code)"; }
echo "   rank 0 ended in $((SECONDS - start)) s with exit $code: $(grep error "$WORK/bare0.log" | tail -1)"
ls "$WORK/bare/checkpoints" | grep -q . || fail "the last good checkpoint is gone"

if (( AGENT_OK )); then
echo "== --max_restarts=1 and --resume auto: a killed rank, a restarted group, the run completes"
(cd "$WORK" && exec "${TORCHRUN[@]}" --max_restarts=1 --master_port="$(free_port)" "$TRAIN" "${COMMON[@]}" \
   --steps 60 --save-every 5 --resume auto --run-dir "$WORK/restart") >"$WORK/restart.log" 2>&1 &
job=$!
wait_for_file "$WORK/restart/checkpoints/ckpt-00000010.pt" 120 || { cat "$WORK/restart.log"; fail "no checkpoint"; }
pid=$(rank_pid "$WORK/restart" 1) || fail "rank 1 not found"
kill -KILL "$pid"
code=0; wait "$job" || code=$?
(( code == 0 )) || { cat "$WORK/restart.log"; fail "torchrun --max_restarts=1 exited $code"; }
grep -q "resumed from" "$WORK/restart.log" || { cat "$WORK/restart.log"; fail "the restarted group did not resume"; }
[[ -f $WORK/restart/checkpoints/ckpt-00000060.pt ]] || fail "no final checkpoint"
"$TRAIN" "${COMMON[@]}" --steps 60 --run-dir "$WORK/one60" >/dev/null 2>&1 || fail "single 60-step run"
losses "$WORK/one60" >"$WORK/one60.txt"; losses "$WORK/restart" >"$WORK/restart.txt"
same_losses "$WORK/one60.txt" "$WORK/restart.txt" 1e-5 || fail "the restarted run's losses differ from one process's"
fi
echo "PASS"
