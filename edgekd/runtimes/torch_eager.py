"""The eager PyTorch model: the reference every artifact is verified against, and measured
beside them. It needs edgekd itself to rebuild the model, so it runs on this host only.
"""

from __future__ import annotations

from pathlib import Path


def open_model(path: str, threads: int, precision: str = "f32"):
    import torch

    from edgekd.distill.plugins import load_run_plugins
    from edgekd.models import load_model
    from edgekd.runs import Run

    torch.set_num_threads(threads)
    run = Run(Path(path).parents[1])  # <run>/<member>/model.pt
    if run.manifest_path.is_file():  # a run's plugin families must be registered before its models are rebuilt
        load_run_plugins(run.manifest())
    model, _ = load_model(Path(path))

    def predict(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return predict, {"runtime": "torch", "version": torch.__version__, "threads": threads, "mode": "eager",
                     "precision": "fp32"}


def output_names(path: str) -> list[str]:
    from edgekd.runtimes import OUTPUT

    return [OUTPUT]  # a module's forward returns the logits alone
