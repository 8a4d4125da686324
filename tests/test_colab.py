"""The Colab notebook (colab/vasa_jax_colab.ipynb) runs top to bottom, headless, under its small settings, and is
committed without outputs."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from fast_xla import xla_flags

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "colab" / "vasa_jax_colab.ipynb"


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]


def test_notebook_runs_headless_on_small_settings(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    env = dict(os.environ, VASA_COLAB_SMALL="1", JAX_PLATFORMS="cpu",
               # This checkout's vasa_jax, whatever is installed; its subprocesses (preprocessing) inherit it.
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
               # One device, and XLA's CPU compiler at its cheapest: compiling the stage-1 step dominates, and
               # these few steps do not need fast code.
               XLA_FLAGS=xla_flags(devices=1))
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)  # raises CellExecutionError, with the cell and its traceback, if any cell fails

    work = tmp_path / "vasa_jax_colab"
    for name in ("demo.mp4", "my_video.mp4", "real_face.mp4", "public_pipeline/pipeline.json", "stream.mp4",
                 "my_model.mp4", "my_pipeline/pipeline.json",
                 "face_toy/metrics.jsonl", "motion_face/metrics.jsonl", "shards/manifest.json"):
        assert (work / name).is_file(), name
    html = [str(output.get("data", {}).get("text/html", "")) for cell in notebook.cells
            for output in cell.get("outputs", [])]
    assert sum("data:video/mp4;base64," in h for h in html) == 4  # demo, your own, real face, your model: inline
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not errors
