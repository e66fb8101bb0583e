#!/bin/bash
# One command of the repository run detached on the device machine, as paper.sh runs the notebooks
# (setup.sh: the tree in /tmp/w, the wheels installed), for a study that outlives one 10-minute call,
# e.g. the paper profile's patience study. Its output goes to /tmp/out/NAME.txt (collect.sh brings
# back the names it knows); /tmp/out/DONE marks its end for wait.sh.
# usage: setsid nohup bash /tmp/job.sh REPO COMMIT NAME CMD [ARG...]
[ $# -ge 4 ] || { echo "usage: job.sh REPO COMMIT NAME CMD [ARG...]" >&2; exit 2; }
. "$(dirname "$0")/setup.sh" "$1" "$2"
name=$3; shift 3
stamp "$name start: $*"
# the GPU's busy share and memory every 2 s while the job runs (issue 14 asks for utilisation as it runs)
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 2 > "/tmp/out/${name}_nvidia_smi.csv" 2>&1 &
  sampler=$!
fi
"$@" > "/tmp/out/$name.txt" 2>&1
rc=$?
[ -n "$sampler" ] && kill "$sampler" 2>/dev/null
stamp "$name end rc=$rc"
touch /tmp/out/DONE
