#!/bin/bash
# Next sitting: paper notebook 04 under MPS (01-03 are committed under model code 228471b4; 04 is
# the last notebook that fits a sitting with today's kernels: README "Does each notebook fit one
# sitting?"), then, on the GPU it leaves idle, the kernel time of a step with fused LayerNorms,
# compiled embedding lookups, both, or compiled blocks (benchmarks/training_step.py: the measurement a faster step needs), the ranking
# rows, and whether nvidia-smi sampling slows a lone model. Runs detached in /tmp/w.
# usage: bash /tmp/paper.sh REPO COMMIT [NOTEBOOKS]   (NOTEBOOKS: e.g. "05" or "04 05"; default "04")
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
for nb in ${3:-04}; do
  stamp "notebook $nb start ($MPS)"
  export ONERANKER_GPU_WORKERS=9
  python3 -m oneranker reproduce --profile paper --device cuda --seeds 0 1 2 $MPS --notebooks notebooks/${nb}_*.ipynb > /tmp/out/nb_$nb.log 2>&1
  rc=$?
  unset ONERANKER_GPU_WORKERS
  stamp "notebook $nb end rc=$rc"
  tar czf /tmp/out/results.tar.gz results/paper figures/paper 2>/dev/null
  [ $rc = 0 ] || break
done
# then what the model-code decision needs (kernel time per step), in separate invocations so
# that a long compile cannot take the first one's numbers with it; the sampler A/B last
stamp "kernels start"
timeout 300 python3 benchmarks/training_step.py --cache /tmp/w/cache --contenders today layernorms-compiled-dynamic embeddings-compiled-dynamic norms-embeddings-compiled-dynamic today-again > /tmp/out/step_layernorms.txt 2>&1
stamp "kernels layernorms+embeddings rc=$?"
timeout 300 python3 benchmarks/training_step.py --cache /tmp/w/cache --contenders today blocks-compiled-dynamic > /tmp/out/step_blocks.txt 2>&1
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
