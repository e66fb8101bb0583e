# Sourced (not run) by paper.sh and job.sh on the device machine: it records the detached run's pid
# for stop.sh, starts the progress log and its stamp function, copies the sent tree to /tmp/w (so that
# a later call, which replaces the carried tree, cannot change a running job's code), installs the
# carried wheels into /tmp/site (not with WHEELS=0, a rehearsal without a GPU), and leaves the job in /tmp/w with the environment set.
# usage: . "$(dirname "$0")/setup.sh" REPO COMMIT
mkdir -p /tmp/out
# one job at a time: a second would delete the first's tree (/tmp/w, its cache too) and take its pid file
# from stop.sh; run stop.sh first to replace a running job
old=$(cat /tmp/out/paper.pid 2>/dev/null)
if [ -n "$old" ] && [ "$old" != $$ ] && kill -0 "$old" 2>/dev/null; then
  echo "a job is still running (pid $old, /tmp/out/paper.pid): bash /tmp/stop.sh first" >&2; exit 3
fi
rm -f /tmp/out/DONE            # a DONE left by an earlier job or stop.sh would end wait.sh at once
echo $$ > /tmp/out/paper.pid   # a session leader under setsid: stop.sh ends its session
LOG=/tmp/out/progress.log
stamp() { echo "$(date -u +%FT%TZ) $*" >> $LOG; }
stamp start
rm -rf /tmp/w && mkdir -p /tmp/w && cp -r "$1"/. /tmp/w/
if [ "${WHEELS:-1}" = 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $(ls /tmp/w/wheels/*.whl | grep -v oneranker) > /tmp/out/pip.log 2>&1
  stamp "installed rc=$?"
else
  stamp "no wheels installed (WHEELS=0: a rehearsal with the python3 on PATH)"
fi
SITE=; [ "${WHEELS:-1}" = 1 ] && SITE=:/tmp/site   # a rehearsal (WHEELS=0) reads no stale /tmp/site
export PYTHONPATH=/tmp/w$SITE PYTHONUNBUFFERED=1 ONERANKER_COMMIT=$2
cd /tmp/w
nvidia-smi > /tmp/out/nvidia_smi_start.txt 2>&1
# the card in the progress log, which every call's output shows: the device tool's H200 kind may
# lend an H100 (2026-12-05), whose 80 GB hold fewer training workers (docs/paper_profile.md)
cards=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | paste -sd ';')
stamp "card: ${cards:-none (no nvidia-smi)}"
