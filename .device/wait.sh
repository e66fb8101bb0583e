#!/bin/bash
# Wait for /tmp/out/DONE up to $1 seconds, then copy what exists to $OUT.
end=$(( $(date +%s) + $1 ))
while [ ! -f /tmp/out/DONE ] && [ $(date +%s) -lt $end ]; do sleep 5; done
cat /tmp/out/progress.log; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
tar czf $OUT/out.tar.gz -C /tmp out
