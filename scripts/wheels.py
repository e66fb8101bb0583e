"""The wheel set a machine with its own PyTorch needs to run the project offline (``make wheels``).

GPU machines often come with PyTorch and CUDA installed and no package index. This writes every
other dependency of the project (the core, ``notebooks`` and ``dev`` extras: datasets,
papermill, nbval, ... and everything they need), pinned by ``constraints.txt``, as wheels for the
target Python and platform, into one folder. The project itself is not among them: it runs from
the checkout copied beside the folder (a wheel of it, made when the set was, would go stale at
the next commit, and where it came first on the path it would run instead of the checkout).
Copy both to the machine and install without an index; its PyTorch satisfies ``torch>=...``:

    python -m pip install --no-index --find-links wheels/ -e ".[notebooks,dev]"

    python scripts/wheels.py [--out wheels] [--python 3.12] [--platform TAG ...] [--have FILE]

``--have FILE`` leaves out, too, every package the target already has (FILE: one name per line,
or ``pip list --format=freeze`` output; ``#`` starts a comment): e.g. ``scripts/h200_image.txt``,
the packages of the lent H200 machines' image, where the whole set would not fit what a command
may carry. Install there without the constraints, so that the machine's own versions stand;
where pip cannot build the checkout (no setuptools offline), put the wheels on the path instead:

    python -m pip install --no-index --no-deps --target /tmp/site wheels/*.whl
    export PYTHONPATH=$PWD:/tmp/site

PyTorch itself, its CUDA libraries (``nvidia-*``) and triton are left out on purpose: they are
what the machine brings, and they are gigabytes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MACHINE_PROVIDED = re.compile(r"^(torch|triton|nvidia[-_].*|cuda[-_].*)$", re.I)


def requirements(pyproject: Path = ROOT / "pyproject.toml", extras: tuple[str, ...] = ("notebooks", "dev")) -> list[str]:
    """The project's requirements (core and ``extras``) without what a GPU machine brings."""
    project = _project(pyproject)
    reqs = list(project["dependencies"]) + [r for e in extras for r in project["optional-dependencies"][e]]
    return [r for r in reqs if not MACHINE_PROVIDED.match(requirement_name(r))]


def _project(pyproject: Path = ROOT / "pyproject.toml") -> dict:
    """The ``[project]`` table of pyproject.toml."""
    return tomllib.loads(pyproject.read_text())["project"]


def requirement_name(line: str) -> str:
    """The distribution name of a requirement or ``pip freeze`` line (``pandas>=2``, ``x==1``)."""
    return re.split(r"[<>=!~\[; @]", line.strip(), maxsplit=1)[0]


# A manylinux_2_28 machine also runs wheels built for older glibc; pip takes the tags literally.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_5_x86_64",
             "manylinux1_x86_64")


def read_have(path: Path) -> set[str]:
    """The normalised names of the packages a target already has (``--have``)."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(normalise(requirement_name(line)))
    return names


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503; a wheel's file name uses '_')."""
    return re.sub(r"[-_.]+", "-", name).lower()


def download(out: Path, python: str, platforms: tuple[str, ...] = PLATFORMS,
             have: frozenset[str] = frozenset()) -> list[Path]:
    """Download the wheels of :func:`requirements` and their dependencies into ``out``;
    returns the wheels there, without those of the packages in ``have`` (normalised names the
    target already has) and without a wheel of the project itself (see the module's doc)."""
    out.mkdir(parents=True, exist_ok=True)
    target = ["--only-binary=:all:", *(a for p in platforms for a in ("--platform", p)), "--python-version", python,
              "--implementation", "cp"]
    subprocess.run([sys.executable, "-m", "pip", "download", "--dest", str(out), "-c", str(ROOT / "constraints.txt"),
                    *target, *requirements()], check=True)
    project = normalise(_project()["name"])
    for wheel in out.glob("*.whl"):               # a dependency may have pulled the machine's own packages in
        name = wheel.name.split("-")[0]
        if MACHINE_PROVIDED.match(name) or normalise(name) in have | {project}:
            wheel.unlink()
    return sorted(out.glob("*.whl"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "wheels"))
    ap.add_argument("--python", default="3.12", help="the target machine's Python (major.minor)")
    ap.add_argument("--platform", nargs="+", default=list(PLATFORMS), help="the target's wheel platform tags")
    ap.add_argument("--have", type=Path, default=None,
                    help="a file naming the packages the target already has (left out too)")
    args = ap.parse_args()
    if args.have is not None and not args.have.is_file():
        raise SystemExit(f"--have {args.have}: no such file")
    have = frozenset(read_have(args.have)) if args.have else frozenset()
    wheels = download(Path(args.out), args.python, tuple(args.platform), have)
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(wheels)} wheels, {size:.0f} MiB, in {args.out}; install on the target with\n"
          f"  python -m pip install --no-index --find-links {args.out} -e \".[notebooks,dev]\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
