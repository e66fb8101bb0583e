#!/bin/bash
# Next sittings: the paper series again under the profile's new defaults (the plateau schedule, cap 60;
# .device/README NEXT), a notebook per sitting, then with the time left the next notebook's models, a
# seed per pass (NN:S entries below), so that no sitting's minutes go unused; then, on the GPU it leaves
# idle, the benchmarks of the H200 column (docs/paper_profile.md) not yet measured (the queue at the end; the GPU-only
# tests first with GPU_TESTS=1). Runs detached in /tmp/w.
# usage: [CHECK_ONLY=1] [SEEDS="0 1"] [RESULTS_IN=FILE] [GPU_WORKERS=N] [DETERMINISTIC=1] [GPU_TESTS=1|K [GPU_TEST_PROCS=N] [GPU_TEST_SECONDS=S]] [E2E=1] bash /tmp/paper.sh REPO COMMIT [ENTRIES [TRAIN_COMPILE]]
#   ENTRIES: the notebooks in order, e.g. "06" or "04 05:0" (default "06"). An entry NN runs notebook NN
#   with seeds 0 1 2. An entry NN:S[,S...] is a pass that only fills the results cache with those
#   seeds' models of notebook NN (reproduce --results-only; no notebook is kept); SEEDS="0 1" makes
#   every entry NN such a pass (NN:0,1) for a whole sitting: "04 05:0" runs 04, then trains and evaluates seed 0's models of 05 that 04 did
#   not, so a later sitting of 05 starts from them (RESULTS_IN). Each entry's results travel back as
#   soon as it ends, so a pass cut by the end of the sitting costs only itself.
#   TRAIN_COMPILE: e.g. blocks (default: the profile's, off);
#   DETERMINISTIC=1: reproduce --deterministic (both sittings of a notebook must run the same way)
#   A notebook too long for one sitting runs in two or three (oneranker.study: the cache's results):
#   SEEDS="0 1" (or "0") first, which leaves /tmp/out/results_cache.tar.gz (commit it) and no notebook;
#   [then SEEDS="0 1" RESULTS_IN=that file, which adds seed 1's and leaves the results of both;]
#   then RESULTS_IN=the last file with the default seeds 0 1 2, which trains only seed 2's models.
#   Every sitting leaves its results cache (collect.sh: results/paper/results_cache_COMMIT.tar.gz), so a
#   notebook's first sitting can start from the last notebook's (RESULTS_IN), under the same model and result code.
#   A rehearsal here, without a GPU (scripts/rehearse_sittings.py): PROFILE=smoke DEVICE=cpu WHEELS=0
#   runs the same steps at the toy profile on the CPU, with the python3 on PATH and no benchmarks.
PROFILE=${PROFILE:-paper}; DEVICE=${DEVICE:-cuda}
mkdir -p /tmp/out
# a bad argument stops here, before any work (on 2026-12-03 SEEDS="0" reached reproduce, which then refused
# one seed; a first sitting now runs reproduce --results-only, which takes one: a sitting per seed fits one call)
# (a job still running keeps its progress log and wait.sh's DONE: the refusal then goes to stderr only)
refuse() {
  [ "${CHECK_ONLY:-0}" = 1 ] && { echo "$*" >&2; exit 2; }   # a check alone touches nothing
  old=$(cat /tmp/out/paper.pid 2>/dev/null)
  if [ -n "$old" ] && kill -0 "$old" 2>/dev/null; then echo "$*" >&2
  else echo "$*" | tee /tmp/out/progress.log >&2; touch /tmp/out/DONE; fi
  exit 2
}
# seeds compared as numbers (05:0,00 names seed 0 twice)
distinct() { [ "$(for x in $1; do echo $((10#$x)); done | sort -u | wc -l)" = "$(echo $1 | wc -w)" ]; }
[ -z "$SEEDS" ] || [[ $SEEDS =~ ^[0-9]+( [0-9]+)*$ ]] || refuse "SEEDS=\"$SEEDS\": give seeds as numbers, e.g. \"0 1\""
[ -z "$SEEDS" ] || distinct "$SEEDS" || refuse "SEEDS=\"$SEEDS\": give distinct seeds"
[ -z "$GPU_TEST_PROCS" ] || [[ $GPU_TEST_PROCS =~ ^[1-9][0-9]?$ ]] || refuse "GPU_TEST_PROCS=\"$GPU_TEST_PROCS\": give a number of pytest processes, 1-99"
[ -z "$GPU_TEST_SECONDS" ] || [[ $GPU_TEST_SECONDS =~ ^[1-9][0-9]{1,3}$ ]] || refuse "GPU_TEST_SECONDS=\"$GPU_TEST_SECONDS\": give the GPU tests' time limit in seconds, 10-9999"
# A notebook may have several passes in one sitting, each of other seeds ("06:0 06:1": each pass's
# results travel back when it ends, so a sitting cut in the second keeps the first's), and then
# itself at most once (a pass after the whole notebook would train nothing new).
ENTRIES=${3-06}; passed=; whole=
[ -n "$(echo $ENTRIES)" ] || refuse "no entry: give the notebooks to run, e.g. \"04\" or \"05:0,1\""
# SEEDS="0 1" makes every notebook entry a pass of those seeds ("05" -> "05:0,1"): one mechanism, the entries'
# (before the checks below, so that "05:0 05" under SEEDS="0 1" is refused: seed 0 in two passes)
[ -z "$SEEDS" ] || ENTRIES=$(for e in $ENTRIES; do [[ $e == *:* ]] && echo $e || echo "$e:${SEEDS// /,}"; done)
for entry in $ENTRIES; do
  [[ $entry =~ ^0[1-6](:[0-9]+(,[0-9]+)*)?$ ]] || refuse "entry '$entry': give a notebook NN (01-06), or NN:S[,S...] for a pass of those seeds"
  nb=${entry%%:*}
  [[ " $whole " == *" $nb "* ]] && refuse "entry '$entry': notebook $nb is named whole before it (a notebook's passes come first)"
  if [[ $entry == *:* ]]; then
    distinct "$(echo ${entry#*:} | tr ',' ' ')" || refuse "entry '$entry': give distinct seeds"
    for s in $(echo ${entry#*:} | tr ',' ' '); do
      [[ " $passed " == *" $nb:$((10#$s)) "* ]] && refuse "entry '$entry': seed $((10#$s)) of notebook $nb is in an earlier pass"
      passed="$passed $nb:$((10#$s))"
    done
  else whole="$whole $nb"; fi
  ls "$1"/notebooks/${nb}_*.ipynb > /dev/null 2>&1 || refuse "entry '$entry': no notebooks/${nb}_*.ipynb in $1"
done
# CHECK_ONLY=1: the checks above and nothing else (scripts/rehearse_sittings.py checks every sitting's
# entries so before its first sitting runs)
[ "${CHECK_ONLY:-0}" = 1 ] && exit 0
. "$(dirname "$0")/setup.sh" "$1" "$2"
MPS=; [ "$DEVICE" = cuda ] && MPS=--mps
if [ -n "$RESULTS_IN" ]; then
  mkdir -p cache && tar xzf "$RESULTS_IN" -C cache
  rc=$?; stamp "results in from $RESULTS_IN rc=$rc"
  # without them this run would train every seed, more than a sitting holds: stop instead
  [ $rc = 0 ] || { touch /tmp/out/DONE; exit 1; }
  # nor may they come from other model or result code (their keys): none would serve
  check=$(python3 scripts/results_in_check.py cache 2>&1); rc=$?; stamp "$check"
  [ $rc = 0 ] || { stamp "stopped: the results in do not serve this code"; touch /tmp/out/DONE; exit 1; }
fi
COMPILE=${4:+--train-compile $4}
DET=; MODE=eager
[ "${DETERMINISTIC:-0}" = 1 ] && { DET=--deterministic; MODE=deterministic; }
if [ -n "$RESULTS_IN" ]; then
  # both sittings of a notebook train one way: the first's mode travels with its results
  first=$(cat cache/results/TRAINING_MODE 2>/dev/null || echo unknown)
  [ "$first" = "$MODE" ] || { stamp "results in were trained $first, this sitting $MODE: stopped"; touch /tmp/out/DONE; exit 1; }
fi
ran=                                # the notebooks of the entries so far, once per entry
for entry in $ENTRIES; do
  nb=${entry%%:*}
  if [[ $entry == *:* ]]; then seeds=$(echo ${entry#*:} | tr ',' ' '); PARTIAL=--results-only   # a pass
  else seeds="0 1 2"; PARTIAL=; fi                                                 # the notebook
  # the log of a notebook's k-th entry in this sitting: nb_NN.log for the first, nb_NN_k.log after it
  # (collect.sh pairs it with the k-th "notebook NN end" stamp)
  k=$(( $(echo $ran | tr ' ' '\n' | grep -c "^$nb$") + 1 )); ran="$ran $nb"
  tag=$nb; [ $k -gt 1 ] && tag=${nb}_$k
  stamp "notebook $nb start (seeds $seeds $PARTIAL $MPS $COMPILE $DET)"
  export ONERANKER_GPU_WORKERS=${GPU_WORKERS:-9}   # GPU_WORKERS=10: one seed of 06 (10 models) in one wave
  python3 -m oneranker reproduce --profile $PROFILE --device $DEVICE --seeds $seeds $PARTIAL $MPS $COMPILE $DET --notebooks notebooks/${nb}_*.ipynb > /tmp/out/nb_$tag.log 2>&1
  rc=$?
  unset ONERANKER_GPU_WORKERS
  # a sitting's cache starts with no model (results only travel), so this counts what the sitting trained
  stamp "notebook $nb end rc=$rc (seeds $seeds); models in the cache: $(ls cache/models/*/final.pt 2>/dev/null | wc -l)"
  # the learning curve of every model it trained (the weights stay here; the curves are a few KB)
  # (notebook 01 trains none: nothing to write)
  if [ "$nb" != 01 ]; then
    # every model of the notebook in the cache: all this sitting trained (its cache starts with none),
    # its earlier passes' too (one file per notebook)
    python3 scripts/paper_histories.py --notebooks $nb --profile $PROFILE --cache cache --out /tmp/out/histories_$nb.jsonl > /tmp/out/histories_$nb.log 2>&1
    stamp "histories $nb rc=$?"   # its own status, not the test's (the 2026-12-04 sitting of 03 stamped the test's 1)
  fi
  # The models' results travel back after every notebook (small; the models stay here): a first sitting
  # keeps nothing else, and a later notebook reuses those of the models it shares (RESULTS_IN; on the
  # smoke profile, on a bare machine, 05 then trains 7 of its 10 models per seed after 04, and 06 9 of 10
  # after 04 and 05: results/shared_results.csv).
  # Also after a late failure: each result is keyed by its models and code, so those computed are valid.
  # Each archive is written beside its name and renamed into place: wait.sh snapshots /tmp/out every
  # minute, and a snapshot taken mid-write would otherwise bring back a truncated archive.
  mkdir -p cache/results && echo $MODE > cache/results/TRAINING_MODE
  tar czf /tmp/out/.results_cache.tar.gz.tmp -C cache results && mv /tmp/out/.results_cache.tar.gz.tmp /tmp/out/results_cache.tar.gz
  [ -n "$PARTIAL" ] || { tar czf /tmp/out/.results.tar.gz.tmp results/$PROFILE figures/$PROFILE 2>/dev/null \
    && mv /tmp/out/.results.tar.gz.tmp /tmp/out/results.tar.gz; }
  [ $rc = 0 ] || break
done
# then, on the GPU the notebooks leave, most asked first: the H200 rows of docs/paper_profile.md not yet measured.
# The training step with its block masks was measured on 2026-12-03 (results/paper/model_train_h200_cb8a1b5.txt:
# step1 compiled 1.58x eager, MFU 23.4%, compiled block mask 1.5% of the step), so it is no longer queued.
# GPU_TESTS=1 runs every GPU-only test first: all passed at model code 228471b4
# (results/paper/gpu_tests_h200_86ffb35.txt) before the tests of the compiled serving request were added;
# GPU_TESTS=compiled_serving_part runs only those (tests/test_generate.py: each part of the request whose
# compile crashed at the benchmark's sizes, compiled alone in a process of its own, to name the part).
# Beam search's generation part (53.8x, results/paper/beam_search_h200_665c419.txt) and the compiled request
# under CUDA_LAUNCH_BLOCKING=1 (its block-mask-fused FlexAttention kernel fails, twice: 8f61a7b, 665c419) have
# run, so they are no longer queued. The workaround, Step 1's mask built outside the compiled graph, held
# (benchmarks/compile_check.py --mask outside: prefill and request agree with eager,
# results/paper/compile_check_mask_outside_h200_1b47d27.txt), and its latency was measured after notebook 04's
# sitting of 2026-12-05 (results/paper/model_e2e_h200_2e33a46.txt: the eager request against the request compiled
# that way, then replayed as a CUDA graph), so E2E=1 runs it again only when asked: the sittings left are tight,
# and a sitting now ends when its notebooks do.
stamp "queue start"
[ "$DEVICE" = cuda ] || { stamp "no GPU ($DEVICE): no queue"; touch /tmp/out/DONE; exit 0; }
if [ "${GPU_TESTS:-0}" != 0 ]; then
  # GPU_TESTS=1: every test marked gpu; another value: those that pytest's -k selects by it
  K=(); what="every test marked gpu"
  [ "$GPU_TESTS" != 1 ] && { K=(-k "$GPU_TESTS"); what="the tests marked gpu that -k '$GPU_TESTS' selects"; }
  # GPU_TEST_PROCS=N: N tests at once (pytest-xdist, in the H200's image): each compile check of the
  # serving request is a process of its own whose compile is mostly single-threaded CPU work, and the
  # machine has 16 cores; five at a time ran there on 2026-12-05 with none past its time limit
  # (results/paper/gpu_tests_h200_bd5df35.txt; more at once may slow a compile past its timeout)
  P=()
  if [ -n "$GPU_TEST_PROCS" ]; then
    if python3 -c "import xdist" 2>/dev/null; then P=(-n "$GPU_TEST_PROCS"); what="$what, $GPU_TEST_PROCS at once"
    else what="$what, one at a time: GPU_TEST_PROCS=$GPU_TEST_PROCS asked, but pytest-xdist is absent"; fi
  fi
  echo "# device: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), $(date -u +%F); commit $2; python -m pytest -q -p no:cacheprovider -rA -m gpu ${K[*]} ${P[*]} tests ($what)" > /tmp/out/gpu_tests.txt
  # GPU_TEST_SECONDS: the run's limit (default 540, the tail of a sitting; a sitting of the 14 compiled-serving
  # checks alone, up to 400 s each, needs more)
  timeout "${GPU_TEST_SECONDS:-540}" python3 -m pytest -q -p no:cacheprovider -rA -m gpu "${K[@]}" "${P[@]}" tests >> /tmp/out/gpu_tests.txt 2>&1
  rc=$?; stamp "gpu tests rc=$rc ($(tail -1 /tmp/out/gpu_tests.txt))"
fi
if [ "${E2E:-0}" = 1 ]; then
  timeout 560 python3 benchmarks/model.py --quick --only e2e --e2e-contenders none request/mask-outside request+graph/mask-outside > /tmp/out/model_e2e.txt 2>&1
  stamp "end-to-end request, mask outside rc=$?"
fi
touch /tmp/out/DONE
