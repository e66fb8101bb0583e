"""make wheels: the offline wheel set leaves out what a GPU machine brings (torch, CUDA, triton)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("wheels", ROOT / "scripts" / "wheels.py")
wheels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wheels)


def test_the_wheel_set_is_the_project_without_the_machines_own_packages():
    reqs = wheels.requirements()
    names = {r.split(">")[0].split("=")[0].split("<")[0] for r in reqs}
    assert {"datasets", "papermill", "nbval", "pyarrow", "jupyterlab"} <= names
    assert "torch" not in names
    assert all(wheels.MACHINE_PROVIDED.match(n) for n in ("torch", "triton", "nvidia-cublas-cu12", "nvidia_cudnn_cu12"))
    assert not wheels.MACHINE_PROVIDED.match("torchmetrics") and not wheels.MACHINE_PROVIDED.match("datasets")
