"""Every command the README shows, run: on a small subset (a few overrides appended to each train
and study command), with the README's folder names mapped to the ones the run made."""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from autoenc.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
TRAIN = ["dataset.train_images=500", "dataset.val_images=20", "dataset.test_images=100", "trainer.epochs=1",
         "trainer.threads=1"]
STUDY = ["study.datasets=[mnist]", "study.depths=[3]", "study.latents=[8]", "study.epochs=1", "study.gpu_epochs=1",
         "study.seeds=1", "study.gpu_seeds=1",
         "study.l2=[1e-5]", "study.l1=[1e-5]", "study.subset={train:1000,val:200,test:200}",
         "study.denoising.variances=[0.04]", "study.denoising.blind=null", "study.denoising.baselines=[noisy,linear]",
         "study.denoising.subset=50", "study.denoising.epochs=1", "study.denoising.gpu_epochs=1"]


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def readme_commands() -> list[str]:
    """The `autoenc ...` commands of the README's bash blocks, in order (comments dropped, `;`
    separated commands apart)."""
    commands = []
    for block in readme_blocks("bash"):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            commands += [part.strip() for part in line.split(" ; ") if part.strip().startswith("autoenc ")]
    return commands


def test_the_readme_shows_the_cards_usage_first():
    commands = readme_commands()
    assert commands[:4] == ["autoenc train model=deep5 latent=30", "autoenc train -m latent=15,30,50,100",
                            "autoenc compare multirun/latent=15,30,50,100-a6ab68 --pivot latent model",
                            "autoenc study"]
    from autoenc.commands.hydra_cli import sweep_folder

    assert sweep_folder(["latent=15,30,50,100"]) == "multirun/latent=15,30,50,100-a6ab68"


def _mapped(word: str, cwd: Path) -> list[str]:
    """A README path (outputs/NAME-<hash>, multirun/NAME-<hash>) as the folder this test's run of
    the same command made (another hash: the overrides that make it small)."""
    match = re.fullmatch(r"(outputs|multirun)/(.+)-[0-9a-f]{6}", word)
    if not match:
        return [word]
    stem = match.group(2).split("+")[0]
    found = sorted(p for p in (cwd / match.group(1)).glob(f"{stem}*") if p.is_dir())
    assert found, f"the README names {word}, but no command before it made such a folder"
    return [str(found[0].relative_to(cwd))]


@pytest.mark.slow
def test_every_readme_command_runs(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOENC_DATA_DIR", str(data_dir))
    for command in readme_commands():
        words = shlex.split(command)[1:]
        args = [w for word in words for w in _mapped(word, tmp_path)]
        if args[0] == "train" and "--help" not in args:
            args += TRAIN
        if args[0] == "study" and "--help" not in args:
            args += STUDY
            if "backend=keras" in args:  # XLA compiles every Keras trial anew: the grid is enough here
                args += ["study.l2=[]", "study.l1=[]", "study.denoising=null"]
        if args[0] == "denoise":
            args += ["--subset", "5"]  # BM3D on 5 images
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        assert code == 0, f"{command}: exit status {code}\n{captured.err[-3000:]}"
    assert (tmp_path / "outputs" / "lab" / "report.html").is_file()
    assert (tmp_path / "outputs" / "quick" / "report.html").is_file()
    assert list(tmp_path.glob("multirun/*/results.csv"))


def test_the_readme_python_runs(data_dir, monkeypatch):
    import autoenc

    real = autoenc.load
    monkeypatch.setattr(autoenc, "load", lambda name, split, *a: tuple(
        part if part is None else part[:500] for part in real(name, split, data_dir)))
    (code,) = readme_blocks("python")
    namespace: dict = {}
    exec(compile(code.replace("epochs=20", "epochs=2"), "README.md", "exec"), namespace)


def test_make_run_runs_the_lab_and_make_test_the_suite():
    run = subprocess.run(["make", "--no-print-directory", "-n", "run"], cwd=README.parent, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip().splitlines()[-1].endswith("/bin/autoenc study")
    test = subprocess.run(["make", "--no-print-directory", "-n", "test"], cwd=README.parent, capture_output=True, text=True)
    assert test.returncode == 0 and test.stdout.strip().splitlines()[-1].endswith("-m pytest")
