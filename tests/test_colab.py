"""A notebook copied alone into an empty folder must run as on Colab: the setup cell
clones the repository (here a local git repository standing in for GitHub) and imports lib.
The same holds for a student copy (tools/student.py), up to its first placeholder."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import nbtool  # noqa: E402
import student  # noqa: E402

SRC = ROOT / "chapters" / "01-analysis-synthesis" / "analysis_synthesis.ipynb"


def run_as_on_colab(nb, tmp_path):
    """Execute ``nb`` saved alone in an empty folder, in a kernel that has google.colab
    imported (as Colab's has), with the clone URL pointing at a local stand-in for GitHub.
    ``nb`` is executed in place and returned with the folder it ran in; a failing cell
    raises CellExecutionError, ``nb`` keeping the outputs of the cells that ran."""
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
    nbformat.write(nb, work / "notebook.ipynb")
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
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return nb, work


def cloned(work):
    name = nbtool.repository()[0].rsplit("/", 1)[1]  # the folder the setup cell clones into
    return (work / name / "lib" / "runtime.py").exists()


def test_notebook_runs_alone_with_a_stand_in_colab(tmp_path):
    nb, work = run_as_on_colab(nbformat.read(SRC, as_version=4), tmp_path)
    assert cloned(work), "the setup cell cloned the repository"
    setup_out = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "profile: smoke" in setup_out and "device: cpu" in setup_out
    checks = [c for c in nb.cells if c.cell_type == "code" and "exercises.check(" in c.source]
    assert checks and all("on track" in "".join(o.get("text", "") for o in c.outputs) for c in checks)


def test_student_copy_runs_alone_with_a_stand_in_colab_up_to_its_first_placeholder(tmp_path):
    stu = student.strip_solutions(nbformat.read(SRC, as_version=4))
    first = next(i for i, c in enumerate(stu.cells) if c.cell_type == "code" and "NotImplementedError" in c.source)
    with pytest.raises(CellExecutionError, match="exercise ch01-ridge: your solution goes here"):
        run_as_on_colab(stu, tmp_path)
    assert cloned(tmp_path / "content"), "the student copy's setup cell cloned the repository"
    ran = [i for i, c in enumerate(stu.cells) if c.cell_type == "code" and c.get("execution_count")]
    assert max(ran) == first, "every cell before the first placeholder ran, and execution stopped there"
    assert all(c.get("execution_count") for c in stu.cells[:first] if c.cell_type == "code")
    assert not any(o.get("output_type") == "error" for c in stu.cells[:first] if c.cell_type == "code" for o in c.outputs)
