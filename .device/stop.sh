#!/bin/bash
# On the device machine: stop the detached paper run and everything it started, so that a
# sitting's last minutes can time a benchmark on a GPU nobody else uses. It ends paper.sh too,
# with the benchmarks queued after its notebooks: start the benchmark in the same call, after it.
# `pkill -f oneranker` was not enough (2026-12-03): the training pool's workers are spawned
# processes ("python3 -c from multiprocessing.spawn ...") of a notebook kernel, which papermill
# may start in a session of its own, so they outlived it and kept the GPU 100% busy under the
# benchmark. So: paper.sh's session (it records its pid, a session leader under setsid) and each
# kernel's session, then the run's private MPS daemons (pool.mps: /tmp/oneranker-mps-*/pipe).
own=$(ps -o sid= -p $$ | tr -d ' ')
for pid in $(cat /tmp/out/paper.pid 2>/dev/null) $(pgrep -f "[i]pykernel"); do
  sid=$(ps -o sid= -p "$pid" 2>/dev/null | tr -d ' ')
  # a session it led (a reused pid leads none), never this script's own
  [ -n "$sid" ] && [ "$sid" = "$pid" ] && [ "$sid" != "$own" ] && pkill -9 -s "$sid"
done
rm -f /tmp/out/paper.pid
for pipe in /tmp/oneranker-mps-*/pipe; do
  [ -d "$pipe" ] && echo quit | CUDA_MPS_PIPE_DIRECTORY="$pipe" timeout 30 nvidia-cuda-mps-control
done
touch /tmp/out/DONE     # a later wait.sh returns at once instead of waiting out its limit
sleep 3
echo "# after stop.sh: GPU utilisation, memory used; then its compute processes (none expected)"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader
