#!/bin/bash
# Here, after a sitting: bring its paper-profile results into the checkout.
# usage: bash .device/collect.sh FILES_AT COMMIT    (FILES_AT: the last call's files_at; COMMIT: the one sent)
# Unpacks FILES_AT/out.tar.gz, copies the files of results/paper and figures/paper that are new or
# differ (cmp) into the checkout, writes each notebook's papermill log with the progress log as
# results/paper/notebookNN_GPU_COMMIT.txt, the benchmark outputs as results/paper/*_GPU_COMMIT.txt
# (GPU: h200, or h100 when the device tool lent an H100 for the H200 kind, as on 2026-12-05; read from
# the sitting's nvidia_smi_start.txt),
# and the cache's results (every sitting since 2026-12-04: a later sitting or notebook starts from them) as
# results/paper/results_cache_COMMIT.tar.gz.
# It commits nothing: read what it lists, then render the README and commit.
set -euo pipefail
files_at=$(realpath "$1"); commit=${2:0:7}
prof=${PROFILE:-paper}    # PROFILE=smoke: a rehearsal's (paper.sh's PROFILE), into results/smoke
[ -f "$files_at/out.tar.gz" ] || { echo "no out.tar.gz in $files_at" >&2; exit 1; }
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tar xzf "$files_at/out.tar.gz" -C "$tmp"
# the card the sitting ran on (a call for the H200 kind may be given an H100): its name and file tag
# (nvidia-smi's table: "|   0  NVIDIA H100 80GB HBM3          On  |", "|   0  NVIDIA H200   On  |")
card=$(grep -o -m1 "NVIDIA H[0-9]00[A-Za-z0-9 ]*" "$tmp/out/nvidia_smi_start.txt" 2>/dev/null \
       | sed -E 's/ +(On|Off) *$//; s/ +$//' || true)
gpu=$(echo "$card" | grep -o -m1 "H[0-9]00" | tr H h || true)
if [ "$prof" = paper ] && [ -z "$gpu" ]; then
  echo "no NVIDIA H100 or H200 named in the sitting's nvidia_smi_start.txt: which card ran it?" >&2; exit 1
fi
gpu=${gpu:-h200}     # a rehearsal (no GPU) keeps the paper sitting's names
mkdir -p "results/$prof"
if [ -f "$tmp/out/results.tar.gz" ]; then
  mkdir "$tmp/R" && tar xzf "$tmp/out/results.tar.gz" -C "$tmp/R"
  (cd "$tmp/R" && find results/$prof figures/$prof -type f 2>/dev/null || true) | while read -r f; do
    if ! cmp -s "$tmp/R/$f" "$f"; then mkdir -p "$(dirname "$f")"; cp "$tmp/R/$f" "$f"; echo "changed: $f"; fi
  done
else
  echo "no results.tar.gz: no notebook finished in this sitting"
fi
if [ -f "$tmp/out/results_cache.tar.gz" ]; then   # the models' results, for a later sitting or notebook (RESULTS_IN)
  cp "$tmp/out/results_cache.tar.gz" "results/$prof/results_cache_${commit}.tar.gz"
  echo "wrote: results/$prof/results_cache_${commit}.tar.gz (RESULTS_IN for the next sitting, same code)"
fi
day=$(head -c 10 "$tmp/out/progress.log")     # the run's day: its first stamp
for log in "$tmp"/out/nb_*.log; do
  [ -f "$log" ] || continue
  # nb_NN.log: notebook NN's first entry of the sitting; nb_NN_K.log its K-th (paper.sh: several passes)
  tag=$(basename "$log" .log); tag=${tag#nb_}; nb=${tag:0:2}; k=1; [[ $tag == *_* ]] && k=${tag#*_}
  state=$(grep -E "notebook $nb end" "$tmp/out/progress.log" | sed -n "${k}p" | sed 's/^[^ ]* //' || true)
  [ -n "$state" ] || state="notebook $nb did not end in this sitting"
  where="paper, one $card"; [ "$prof" = paper ] || where="$prof, a rehearsal without a GPU"
  { echo "# notebook $nb at $where, $day, commit $commit: the reproduce command of .device/paper.sh's notebook loop ($state)"
    tr '\r' '\n' < "$log" | grep -v '^$' || true
    echo "# progress.log"; cat "$tmp/out/progress.log"; } > "results/$prof/notebook${tag}_${gpu}_${commit}.txt"
  echo "wrote: results/$prof/notebook${tag}_${gpu}_${commit}.txt ($state)"
done
for h in "$tmp"/out/histories_*.jsonl; do      # each notebook's models' learning curves (scripts/paper_histories.py)
  [ -s "$h" ] || continue
  nb=$(basename "$h" .jsonl); nb=${nb#histories_}
  cp "$h" "results/$prof/histories_${nb}_${gpu}_${commit}.jsonl" && echo "wrote: results/$prof/histories_${nb}_${gpu}_${commit}.jsonl"
done
for b in pool_blocks pool_segments step_loss step_layernorms step_blocks model_rank sampler step_deterministic gpu_tests_deterministic gpu_tests beam_search attention model_e2e model_e2e_blocking model_train patience_study compile_check_mask_outside; do
  [ -s "$tmp/out/$b.txt" ] && cp "$tmp/out/$b.txt" "results/$prof/${b}_${gpu}_${commit}.txt" && echo "wrote: results/$prof/${b}_${gpu}_${commit}.txt"
done
for c in patience_study patience_study_curves; do     # a job's tables (job.sh: the command's --out, --curves under /tmp/out)
  [ -s "$tmp/out/$c.csv" ] && cp "$tmp/out/$c.csv" "results/$prof/${c}_${gpu}_${commit}.csv" && echo "wrote: results/$prof/${c}_${gpu}_${commit}.csv"
done
for g in "$tmp"/out/*_nvidia_smi.csv; do      # job.sh's GPU samples, one file per job
  [ -s "$g" ] || continue
  j=$(basename "$g" _nvidia_smi.csv)
  cp "$g" "results/$prof/${j}_nvidia_smi_${gpu}_${commit}.csv" && echo "wrote: results/$prof/${j}_nvidia_smi_${gpu}_${commit}.csv"
done
echo "# progress.log"; cat "$tmp/out/progress.log"
