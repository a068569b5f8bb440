# Setup (identical in every notebook): make `lib/` importable, pick the device, seed.
# Locally the repository root is found above this notebook; on Colab the repository
# is shallow-cloned once (nothing is pip-installed: Colab already has torch & co.).
import os, sys, subprocess, pathlib

REPO_URL = os.environ.get(
    "WORKBOOK_REPO_URL", "https://github.com/hacettepe-cvlab/dgm-workbook.git"
)
HERE = pathlib.Path.cwd()
ROOT = next(
    (p for p in [HERE, *HERE.parents] if (p / "lib" / "runtime.py").exists()), None
)
if ROOT is None and "google.colab" in sys.modules:
    ROOT = HERE / "dgm-workbook"
    if not (ROOT / "lib" / "runtime.py").exists():
        cmd = ["git", "clone", "--depth", "1", REPO_URL, str(ROOT)]
        subprocess.run(cmd, check=True)
if ROOT is None:
    raise RuntimeError(
        "Cannot find the workbook's lib/: open this notebook inside the "
        "repository, or in Colab."
    )
sys.path.insert(0, str(ROOT))
from lib import runtime

DEVICE = runtime.setup(seed=0)
