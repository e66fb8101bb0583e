"""Every trained model's learning curve, written out of a cache before the machine is given back.

A paper model's weights (about 22 MB) stay on the lent GPU machine, and with them its training
history: per-epoch training and validation losses, the best epoch and what ended the run. The
notebooks keep a stopping table for notebook 04 only, without the curves, so whether the paper
runs had flattened can only be read off a figure (docs/paper_profile.md, "Trained to convergence?"). This script
reads the histories of a notebook's models from the cache and writes them as JSON lines (a few
KB), which `.device/paper.sh` brings back after each notebook. It reads; it trains nothing and
changes no cached entry.

    python scripts/paper_histories.py --notebooks 05 --profile paper --seeds 0 1 2 --cache cache \
        --out histories_05.jsonl
    python scripts/paper_histories.py --summary histories_05.jsonl      # the convergence table

Each line: the notebook, the config's hash and seed, what its config changes from the profile's
(``label``), the epochs, the best epoch, whether early stopping ended the run, and the curve.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oneranker import studies  # noqa: E402
from oneranker.cache import MODEL_CODE, atomic_write_text, code_version, load_entry, model_folder  # noqa: E402
from oneranker.config import Config, ConfigError, make_config  # noqa: E402
from oneranker.realdata import change_up_to_best, last_epochs_change  # noqa: E402
from oneranker.reproduce import check_seeds  # noqa: E402

LAST = 5        # the summary's window: the validation loss's change over a run's last five epochs
LATE = 3        # a capped run whose best epoch is among its last LATE was still improving


def label(cfg: Config, profile: str) -> str:
    """What ``cfg`` changes from its profile's config of the same seed, as ``section.field=value``
    (``profile default`` when nothing): a readable name for a model without the notebook's."""
    base = make_config(profile, seed=cfg.seed)
    changed = []
    for section in dataclasses.fields(cfg):
        mine, theirs = getattr(cfg, section.name), getattr(base, section.name)
        if not dataclasses.is_dataclass(mine):
            continue
        changed += [f"{section.name}.{f.name}={getattr(mine, f.name)!r}" for f in dataclasses.fields(mine)
                    if getattr(mine, f.name) != getattr(theirs, f.name)]
    return ", ".join(changed) or "profile default"


def histories(notebook: str, profile: str, seeds: list[int], cache: Path) -> list[dict]:
    """One record per model of ``notebook`` (its configs at ``seeds``) that the cache holds."""
    records = []
    for cfg in studies.notebook_configs(notebook, profile, seeds):
        blob = load_entry(model_folder(cfg, cache) / "final.pt", expect=("config_hash", "history"))
        if blob is None:
            continue
        if blob["config_hash"] != cfg.hash():
            raise ValueError(f"{model_folder(cfg, cache)}: made by config {blob['config_hash']}, not {cfg.hash()}")
        history = json.loads(blob["history"])
        records.append({"notebook": notebook, "config": cfg.hash(), "model_code": code_version(MODEL_CODE),
                        "seed": cfg.seed, "label": label(cfg, profile),
                        "epochs": len(history["epochs"]), "best_epoch": history["best_epoch"],
                        "stopped_early": history["stopped_early"], "cap": cfg.train.epochs,
                        "curve": [{k: e[k] for k in ("epoch", "train_loss", "valid_loss") if k in e}
                                  for e in history["epochs"]]})
    return records


def last_change(curve: list[dict], last: int = LAST) -> float | None:
    """The validation loss's relative change over a curve's last ``last`` epochs
    (:func:`oneranker.realdata.last_epochs_change`; None with ``last`` epochs or fewer)."""
    return last_epochs_change([e["valid_loss"] for e in curve], last)


def change_to_best(curve: list[dict], last: int = LAST) -> float | None:
    """The validation loss's relative change over the ``last`` epochs up to a curve's best epoch
    (:func:`oneranker.realdata.change_up_to_best`; None for a best within the first ``last``): the
    stopping rule does not pull it towards zero, as it does the change over the last epochs."""
    return change_up_to_best([e["valid_loss"] for e in curve], last)


def best_valid(curve: list[dict], best_epoch: int) -> float:
    """The validation loss at a run's best epoch: the weights it kept (comparable across the
    variants of one seed only where they compute the same loss terms)."""
    (loss,) = [e["valid_loss"] for e in curve if e["epoch"] == best_epoch]
    return loss


def still_improving(best_epoch: int, epochs: int) -> bool:
    """Whether a run's best validation loss came in its last ``LATE`` epochs: a run the cap
    stopped then was still improving."""
    return best_epoch > epochs - LATE


def with_cap(cfg: Config, cap: int) -> Config:
    """``cfg`` with the cap of epochs ``cap`` (``train.epochs``) and nothing else changed."""
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=cap))


def under_a_smaller_cap(notebook: str, profile_config: str, model_code: str, seeds: list[int],
                        records: list[dict], profile: str = "paper") -> dict | None:
    """Whether a notebook's run recorded under ``profile_config`` trained today's ``profile``
    but for a smaller cap of epochs, and whether any of its runs reached that cap.

    Returns ``{"cap": C, "runs": n, "reached": k}`` where ``profile_config`` is the profile's
    config with ``train.epochs = C`` (C below today's), the notebook's ``n`` models all train
    under the plateau schedule (under the cosine one the cap shapes the rate), and the learning
    curves ``records`` (this script's lines, every file of them) hold a curve made under
    ``model_code`` for each of them at cap C; ``k`` of them reached it in some draw (a config
    trained in several sittings has a curve per draw: one at the cap counts); else None (another
    config or schedule, or a model's curve not brought back: nothing can then be said of it). A
    notebook that trains no model has ``n = 0``. A run that stopped by its rule before C trains
    the same epochs under any larger cap in exact arithmetic (the plateau schedule does not read
    the cap: tests/test_train.py); on the GPU a rerun is another draw of it."""
    today = make_config(profile)
    if today.train.lr_schedule != "plateau":
        return None
    caps = sorted({r["cap"] for r in records if r["cap"] < today.train.epochs})
    cap = next((c for c in caps if with_cap(today, c).hash() == profile_config), None)
    if cap is None:
        return None
    if notebook not in studies.SEEDS:
        return {"cap": cap, "runs": 0, "reached": 0}
    configs = studies.notebook_configs(notebook, profile, seeds)
    if any(cfg.train.lr_schedule != "plateau" for cfg in configs):
        return None
    draws: dict[str, list[dict]] = {}
    for r in records:
        if r["model_code"] == model_code and r["cap"] == cap:
            draws.setdefault(r["config"], []).append(r)
    wanted = [with_cap(cfg, cap).hash() for cfg in configs]
    if any(h not in draws for h in wanted):
        return None
    return {"cap": cap, "runs": len(wanted),
            "reached": sum(any(not d["stopped_early"] for d in draws[h]) for h in wanted)}


def read(path: Path) -> list[dict]:
    """The records of a file :func:`main` wrote."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summary(records: list[dict]) -> str:
    """A line per model: epochs, best epoch, what ended it, the last epochs' change of the
    validation loss and its value at the best epoch; then how many reached the cap and how many of those were still improving."""
    lines = [f"{'notebook':8s} {'seed':>4s} {'epochs':>6s} {'best':>4s}  {'ended by':14s} {f'last {LAST}':>8s} "
             f"{f'{LAST} to best':>10s} {'best valid':>10s}  label"]
    for r in records:
        change, to_best = last_change(r["curve"]), change_to_best(r["curve"])
        lines.append(f"{r['notebook']:8s} {r['seed']:4d} {r['epochs']:6d} {r['best_epoch']:4d}  "
                     f"{'early stopping' if r['stopped_early'] else 'the cap':14s} "
                     f"{'n/a' if change is None else f'{100 * change:+.2f}%':>8s} "
                     f"{'n/a' if to_best is None else f'{100 * to_best:+.2f}%':>10s} "
                     f"{best_valid(r['curve'], r['best_epoch']):10.4f}  {r['label']}")
    capped = [r for r in records if not r["stopped_early"]]
    late = [r for r in capped if still_improving(r["best_epoch"], r["epochs"])]
    lines.append(f"{len(capped)} of {len(records)} runs reached the cap; {len(late)} of them had their best "
                 f"validation loss in their last {LATE} epochs.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notebooks", nargs="+", help="e.g. 05 06")
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--seeds", type=int, nargs="+", help="the run's seeds (default: each notebook's)")
    ap.add_argument("--cache", type=Path, default=ROOT / "cache")
    ap.add_argument("--out", type=Path, help="the JSON-lines file to write")
    ap.add_argument("--summary", type=Path, help="print the convergence table of a file this script wrote")
    args = ap.parse_args()
    if args.summary:
        try:
            records = read(args.summary)
        except (OSError, ValueError) as e:      # missing file, a line that is not JSON
            ap.error(f"--summary {args.summary}: cannot read it ({e})")
        print(summary(records))
        return
    if not (args.notebooks and args.out):
        ap.error("give --notebooks and --out (or --summary FILE)")
    unknown = [nb for nb in args.notebooks if nb not in studies.SEEDS]
    if unknown:
        ap.error(f"no notebook {', '.join(unknown)} trains models; those that do: {', '.join(sorted(studies.SEEDS))}")
    try:
        make_config(args.profile)
    except ConfigError as e:
        ap.error(str(e))
    try:
        check_seeds(args.seeds, results_only=True)   # one seed is enough: a curve needs no CI
    except ValueError as e:
        ap.error(f"--seeds: {e}")
    if not (args.cache / "models").is_dir():
        ap.error(f"--cache {args.cache}: no model cache there (no models/ folder)")
    if not args.out.parent.is_dir():
        ap.error(f"--out {args.out}: no folder {args.out.parent}")
    records = [r for nb in args.notebooks
               for r in histories(nb, args.profile, args.seeds or list(studies.SEEDS[nb]), args.cache)]
    atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in records))   # never a half-written file
    print(f"{len(records)} histories -> {args.out}")
    print(summary(records))


if __name__ == "__main__":
    main()
