"""A notebook copied alone into an empty folder must run as on Colab: the setup cell
clones the repository (here a local git repository standing in for GitHub) and imports lib."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def test_notebook_runs_alone_with_a_stand_in_colab(tmp_path):
    # 1. a git repository holding the workbook's lib/ (what the clone URL points at)
    remote = tmp_path / "remote"
    shutil.copytree(ROOT / "lib", remote / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-c", "user.email=ci@example.org", "-c", "user.name=ci"]
    subprocess.run(git + ["init", "-q", "-b", "main", str(remote)], check=True)
    subprocess.run(git + ["-C", str(remote), "add", "."], check=True)
    subprocess.run(git + ["-C", str(remote), "commit", "-q", "-m", "lib"], check=True)
    # 2. the notebook alone in an empty folder
    work = tmp_path / "content"
    work.mkdir()
    src = ROOT / "chapters" / "01-analysis-synthesis" / "analysis_synthesis.ipynb"
    shutil.copy(src, work / src.name)
    # 3. a kernel that has google.colab imported, as Colab's has
    ipdir = tmp_path / "ipython"
    startup = ipdir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text(
        "import sys, types\n"
        "colab = types.ModuleType('google.colab'); google = types.ModuleType('google')\n"
        "google.colab = colab; sys.modules['google'] = google; sys.modules['google.colab'] = colab\n")
    env = {"IPYTHONDIR": str(ipdir), "WORKBOOK_REPO_URL": remote.as_uri(), "WORKBOOK_PROFILE": "smoke",
           "WORKBOOK_CACHE": str(tmp_path / "cache")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nb = nbformat.read(work / src.name, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(work)}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert (work / "dgm-workbook" / "lib" / "runtime.py").exists(), "the setup cell cloned the repository"
    setup_out = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "profile: smoke" in setup_out and "device: cpu" in setup_out
