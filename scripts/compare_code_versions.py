"""Do the cached models of two model-code versions agree? Weights and per-epoch losses, bitwise.

A change to the model code (``cache.MODEL_CODE``) re-keys every cached model, so the committed
results name the code version they were computed with. When a change is meant not to move any
result (a runtime knob that is off by default, a refactor), retrain under the new code
(``python -m oneranker pretrain``) and compare: every model of the same config must have the
same weights and the same training and validation loss at every epoch (only the recorded
seconds may differ). Models trained under only one of the two versions are counted, not
compared.

    python scripts/compare_code_versions.py 14b8eb97 be1bcba2 --out results/quick/code_version_check.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from oneranker.cache import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent


def _curve(history: str) -> list[dict]:
    """The per-epoch record of a model's history without its wall times."""
    return [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in json.loads(history)["epochs"]]


def same_model(old: Path, new: Path) -> bool:
    """Bitwise equal weights and loss curves of two trained models (their ``final.pt``)."""
    a = torch.load(old, map_location="cpu", weights_only=False)
    b = torch.load(new, map_location="cpu", weights_only=False)
    weights = a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k])
                                                              for k in a["model"])
    return weights and _curve(a["history"]) == _curve(b["history"])


def compare(models: Path, old: str, new: str) -> dict:
    """Every config trained under both versions: which agree, which differ."""
    def trained(version: str) -> dict[str, Path]:
        return {d.name.split("-")[0]: d / "final.pt" for d in models.glob(f"*-{version}") if (d / "final.pt").exists()}

    a, b = trained(old), trained(new)
    both = sorted(set(a) & set(b))
    differ = [h for h in both if not same_model(a[h], b[h])]
    return {"old": old, "new": new, "compared": len(both), "equal": len(both) - len(differ), "differ": differ,
            "only_old": len(set(a) - set(b)), "only_new": len(set(b) - set(a))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--out", default=None, help="JSON of the comparison")
    ap.add_argument("--note", default=None,
                    help="which models were retrained, and where (kept in the JSON; e.g. 'a sample of 4 configs')")
    args = ap.parse_args()
    models = Path(args.cache) / "models"
    if not models.is_dir():
        raise SystemExit(f"{models}: no model cache there (--cache)")
    result = compare(models, args.old, args.new)
    if args.note:
        result["note"] = args.note
    print(json.dumps(result, indent=1))
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
