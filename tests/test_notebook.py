"""examples/lab.ipynb runs from top to bottom with quick settings (nbclient); a failing cell fails
the test.

Kernel: the test writes a temporary kernel spec "autoenc-test" whose argv starts the Python running
pytest (the project's .venv: `sys.executable -m ipykernel_launcher`) and puts it first on
JUPYTER_PATH, so the notebook never runs in another interpreter that happens to own a "python3"
kernel spec; the injected first cell also asserts the kernel's sys.prefix is the venv's.

Study: the notebook resumes its study folder. The test copies the session's `quick_study` folder
(without model weights: a finished trial is recognised by its result.json), so the notebook's
`run_study` finds every trial finished, only re-collects the results and rewrites the report, and
the quick study is not run a second time.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from conftest import QUICK_TESTED, quick_config
from generated import checksums_cell

from autoenc.study import count_trials

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "lab.ipynb"
KERNEL = "autoenc-test"


def _kernel_spec(root: Path) -> Path:
    """A Jupyter data folder holding one kernel spec that runs this interpreter's ipykernel."""
    folder = root / "kernels" / KERNEL
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "autoenc test (.venv)", "language": "python"}))
    return root


def _quick_parameters(data_dir: Path, study_dir: Path, out: Path) -> str:
    return "\n".join([
        "# quick settings injected by tests/test_notebook.py",
        "import sys",
        f"assert sys.prefix == {sys.prefix!r}, sys.prefix  # the kernel is the venv's Python",
        "EPOCHS = 1",
        "LATENT = 15",
        "TRAIN_IMAGES = 2000",
        "VAL_IMAGES = 500",
        "TEST_IMAGES = 300",
        'STUDY = "quick"',
        f"STUDY_OVERRIDES = {QUICK_TESTED!r}",  # the quick_study fixture's study, which the notebook reuses
        f"STUDY_DIR = {str(study_dir)!r}",
        f"OUT = {str(out)!r}",
        f"DATA_DIR = {str(data_dir)!r}",
        checksums_cell(),  # the generated datasets' checksums, when the suite runs without the real data
    ])


def test_committed_notebook_has_no_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", [])
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the notebook's outputs"


def test_notebook_text_names_files_that_exist_and_the_presets_activation():
    """The markdown points at documents the repository has (the protocol is docs/protocol.md; there is
    no SPEC.md) and names the preset's real hidden activation (SiLU, the recipe), not ReLU."""
    nbformat = pytest.importorskip("nbformat")
    from autoenc import ModelConfig

    nb = nbformat.read(NOTEBOOK, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    named = set(re.findall(r"`([\w./-]+\.md)`", text)) | set(re.findall(r"\]\(([^)#]+\.md)\)", text))
    assert "../docs/protocol.md" in named and "../docs/recipe.md" in named
    for name in named - {"report.md"}:  # report.md is what a study writes; a link is relative to the notebook
        assert any((root / name).is_file() for root in (NOTEBOOK.parent, NOTEBOOK.parents[1])), name
    preset = next(c.source for c in nb.cells if c.cell_type == "markdown" and "depth-3 preset" in c.source)
    activation = {"silu": "SiLU", "relu": "ReLU"}[ModelConfig.preset(3, 30).activation]
    assert f"hidden layers follow autoenc's training recipe: {activation}" in preset
    assert "ReLU hidden layers, sigmoid" not in preset
    assert 'activation="relu")` gives the\nprotocol\'s plain model' in preset


@pytest.mark.slow
def test_lab_notebook_runs(quick_study, data_dir, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    study_dir = tmp_path / "study"
    shutil.copytree(quick_study, study_dir, ignore=shutil.ignore_patterns("*.safetensors"))
    before = json.loads((study_dir / "results.json").read_text())
    monkeypatch.setenv("JUPYTER_PATH", str(_kernel_spec(tmp_path / "jupyter")))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    first.source = _quick_parameters(data_dir, study_dir, tmp_path / "out")
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=300,
                                     resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError when a cell fails
    seconds = time.perf_counter() - t0
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "test psnr" in text and "PCA k=15" in text
    total = count_trials(quick_config())
    assert f"{total} of {total} trials" in text, "the notebook re-ran trials instead of reusing the quick study"
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6, "the notebook should show the grid, the PCA grid and the report's figures"
    assert (tmp_path / "out" / "grid.png").is_file() and (study_dir / "report.html").is_file()
    assert json.loads((study_dir / "results.json").read_text()) == before, "the reused study's results changed"
    print(f"the notebook ran in {seconds:.0f} s")
