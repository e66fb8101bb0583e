"""make wheels: the offline wheel set leaves out what a GPU machine brings (torch, CUDA, triton)."""

from pathlib import Path

from conftest import load_tool

ROOT = Path(__file__).resolve().parent.parent
wheels = load_tool("scripts/wheels.py")


def test_the_wheel_set_is_the_project_without_the_machines_own_packages():
    reqs = wheels.requirements()
    names = {r.split(">")[0].split("=")[0].split("<")[0] for r in reqs}
    assert {"datasets", "papermill", "nbval", "pyarrow", "jupyterlab"} <= names
    assert "torch" not in names
    assert all(wheels.MACHINE_PROVIDED.match(n) for n in ("torch", "triton", "nvidia-cublas-cu12", "nvidia_cudnn_cu12"))
    assert not wheels.MACHINE_PROVIDED.match("torchmetrics") and not wheels.MACHINE_PROVIDED.match("datasets")


def test_have_names_what_the_target_already_has(tmp_path):
    """--have: names one per line or as `pip list --format=freeze` writes them, comments
    skipped, compared as pip compares names (case, '-', '_' and '.' alike), as wheel file names
    spell them; the committed H200 image list holds pyarrow and not papermill."""
    listing = tmp_path / "have.txt"
    listing.write_text("# a comment\nPyYAML==6.0.2\nscikit_learn\nzope.interface >= 5  # pinned\n\n")
    assert wheels.read_have(listing) == {"pyyaml", "scikit-learn", "zope-interface"}
    assert wheels.normalise("scikit_learn") == wheels.normalise("Scikit-Learn") == "scikit-learn"
    image = wheels.read_have(ROOT / "scripts" / "h200_image.txt")
    assert "pyarrow" in image and "papermill" not in image and "datasets" not in image


def test_the_set_leaves_out_the_machines_packages_what_it_has_and_the_project(tmp_path, monkeypatch):
    """download(): of what pip fetched, only the wheels the target lacks stay. The project's own
    wheel is never among them: the checkout runs (a stale wheel of it first on the path ran
    instead of the checkout on the H200)."""
    fetched = ["oneranker-0.1.0-py3-none-any.whl", "torch-2.11.0-cp312-cp312-manylinux_2_28_x86_64.whl",
               "nvidia_cublas-13.0-py3-none-manylinux_2_28_x86_64.whl", "numpy-2.3.0-cp312-cp312-manylinux_2_28_x86_64.whl",
               "papermill-2.6.0-py3-none-any.whl"]

    def fake_pip(cmd, check):
        assert "wheel" not in cmd[3:4]          # the project is not built
        for name in fetched:
            (tmp_path / name).write_bytes(b"")

    monkeypatch.setattr(wheels.subprocess, "run", fake_pip)
    kept = wheels.download(tmp_path, "3.12", have=frozenset({"numpy"}))
    assert [w.name for w in kept] == ["papermill-2.6.0-py3-none-any.whl"]
