#!/bin/bash
# Next sitting: paper notebook 04 under MPS (01-03 are committed under model code 228471b4; 04
# failed on 2026-12-03 in a cell after its training, fixed since: results/paper/notebook04_h200_4e2f4c4_failed.txt),
# then, on the GPU it leaves idle, whether compiled transformer blocks (train.compile='blocks', a
# runtime field: reproduce --train-compile) speed eight models training at once under MPS, the
# pace of notebooks 05 and 06 (benchmarks/training_throughput.py; a step's kernels alone were
# 28% shorter: results/paper/step_blocks_h200_4e2f4c4.txt), then a lone step's kernel time and
# warm-up with the whole loss compiled (dynamic sizes) and with the package's 'blocks' scope, the
# ranking rows, and whether nvidia-smi sampling slows a lone model. Runs detached in /tmp/w.
# usage: [SEEDS="0 1"] [RESULTS_IN=FILE] bash /tmp/paper.sh REPO COMMIT [NOTEBOOKS [TRAIN_COMPILE]]
#   NOTEBOOKS: e.g. "05" or "04 05" (default "04"); TRAIN_COMPILE: e.g. blocks (default: the profile's, off)
#   A notebook too long for one sitting runs in two (oneranker.study: the cache's results):
#   SEEDS="0 1" first, which leaves /tmp/out/results_cache.tar.gz (commit it) and no notebook;
#   then RESULTS_IN=that file with the default seeds 0 1 2, which trains only seed 2's models.
mkdir -p /tmp/out
echo $$ > /tmp/out/paper.pid   # a session leader under setsid: stop.sh ends its session
LOG=/tmp/out/progress.log
stamp() { echo "$(date -u +%FT%TZ) $*" >> $LOG; }
stamp start
rm -rf /tmp/w && mkdir -p /tmp/w && cp -r "$1"/. /tmp/w/
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $(ls /tmp/w/wheels/*.whl | grep -v oneranker) > /tmp/out/pip.log 2>&1
stamp "installed rc=$?"
export PYTHONPATH=/tmp/w:/tmp/site PYTHONUNBUFFERED=1 ONERANKER_COMMIT=$2
cd /tmp/w
nvidia-smi > /tmp/out/nvidia_smi_start.txt 2>&1
MPS=--mps
PARTIAL=${SEEDS:+1}          # SEEDS given: a first sitting that only fills the results cache
SEEDS=${SEEDS:-0 1 2}
if [ -n "$RESULTS_IN" ]; then
  mkdir -p cache && tar xzf "$RESULTS_IN" -C cache
  rc=$?; stamp "results in from $RESULTS_IN rc=$rc"
  # without them this run would train every seed, more than a sitting holds: stop instead
  [ $rc = 0 ] || { touch /tmp/out/DONE; exit 1; }
fi
COMPILE=${4:+--train-compile $4}
for nb in ${3:-04}; do
  stamp "notebook $nb start ($MPS $COMPILE)"
  export ONERANKER_GPU_WORKERS=9
  python3 -m oneranker reproduce --profile paper --device cuda --seeds $SEEDS $MPS $COMPILE --notebooks notebooks/${nb}_*.ipynb > /tmp/out/nb_$nb.log 2>&1
  rc=$?
  unset ONERANKER_GPU_WORKERS
  stamp "notebook $nb end rc=$rc (seeds $SEEDS)"
  if [ -n "$PARTIAL" ]; then
    # a first sitting: only the models' results travel (small; the models stay here), not its notebook
    tar czf /tmp/out/results_cache.tar.gz -C cache results
  else
    tar czf /tmp/out/results.tar.gz results/paper figures/paper 2>/dev/null
  fi
  [ $rc = 0 ] || break
done
# then whether compiled blocks speed a pool of eight models under MPS (each contender its own
# daemon; eager before and after it), then the existing 'blocks' scope's step alone, in separate
# invocations so that a long compile cannot take the first one's numbers with it; the sampler A/B last
stamp "pool start"
timeout 480 python3 benchmarks/training_throughput.py --cache /tmp/w/cache --runs 20x8ft2m 20x8fcbt2m 20x8ft2m > /tmp/out/pool_blocks.txt 2>&1
stamp "pool blocks rc=$?"
# a bigger lever, if its compile is short enough: the whole forward pass and losses as one graph,
# every size symbolic from the start (train.compile='loss' recompiles at the second length and
# outlasted 6.5 minutes on static shapes); then the package's 'blocks' step alone
timeout 360 python3 benchmarks/training_step.py --cache /tmp/w/cache --contenders today loss-compiled-dynamic > /tmp/out/step_loss.txt 2>&1
stamp "kernels loss rc=$?"
timeout 300 python3 benchmarks/training_step.py --cache /tmp/w/cache --contenders today blocks-compiled today-again > /tmp/out/step_blocks.txt 2>&1
stamp "kernels blocks rc=$?"
# issue 14's H200 column: ranking with K/V pass-through (each size's rows print as measured)
timeout 200 python3 benchmarks/model.py --quick --only rank --candidates 256 1024 64 > /tmp/out/model_rank.txt 2>&1
stamp "rank rc=$?"
stamp "sampler start"
for sm in 0 2000 0; do
  echo "## sample-ms $sm" >> /tmp/out/sampler.txt
  timeout 150 python3 benchmarks/training_throughput.py --cache /tmp/w/cache --sample-ms $sm --runs 20x1f 20x1f --warmup 10 --steps 30 2>&1 | grep -E "^ *20x|^#" >> /tmp/out/sampler.txt
done
stamp "sampler end"
touch /tmp/out/DONE
