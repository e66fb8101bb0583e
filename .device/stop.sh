#!/bin/bash
# On the device machine: stop the detached paper run and everything it started, so that a
# sitting's last minutes can time a benchmark on a GPU nobody else uses. `pkill -f oneranker`
# was not enough (2026-12-03): the training pool's workers are spawned processes ("python3 -c
# from multiprocessing.spawn ...") of a notebook kernel, which papermill may start in a session
# of its own, so they outlived it and kept the GPU 100% busy under the benchmark. So: every
# process of paper.sh's session (it records its pid, a session leader under setsid) and of each
# kernel's session, then the run's private MPS daemon and server.
for pid in $(cat /tmp/out/paper.pid 2>/dev/null) $(pgrep -f "[i]pykernel"); do
  sid=$(ps -o sid= -p "$pid" 2>/dev/null | tr -d ' ')
  [ -n "$sid" ] && pkill -9 -s "$sid"
done
pkill -f "[n]vidia-cuda-mps"
sleep 3
echo "# after stop.sh: GPU utilisation, memory used; then its compute processes (none expected)"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader
