#!/bin/bash
# Wait for /tmp/out/DONE up to $1 seconds, then copy what exists to $OUT. Every 60 s it also
# leaves a snapshot in $OUT (written aside, then renamed), so a call cut by the session's
# device time still brings back what had been done (on 2026-12-03 a cut call lost notebook 03).
end=$(( $(date +%s) + $1 ))
# tar exits 1 when a log grew while it was read ("file changed as we read it"): still a snapshot
snap() { tar czf $OUT/.out.tar.gz -C /tmp out; [ $? -le 1 ] && mv $OUT/.out.tar.gz $OUT/out.tar.gz; }
next=$(( $(date +%s) + 60 ))
while [ ! -f /tmp/out/DONE ] && [ $(date +%s) -lt $end ]; do
  sleep 5
  if [ $(date +%s) -ge $next ]; then snap; next=$(( $(date +%s) + 60 )); fi
done
cat /tmp/out/progress.log; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
snap
