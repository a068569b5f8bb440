import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _exercise_checks_report(monkeypatch):
    """Unit tests look at the verdicts of wrong answers: `make test` sets
    WORKBOOK_CHECKS=strict for the notebooks (their reference solutions must pass),
    which would turn every "not yet" into an error here."""
    monkeypatch.delenv("WORKBOOK_CHECKS", raising=False)


@pytest.fixture(autouse=True, scope="module")
def _one_thread_for_exercise_checks(request):
    """The exercise checkers' tests (test_exercises*.py) run tiny networks: one torch
    thread is fastest; on a busy 2-core machine two threads made calls 10-50x slower."""
    if not request.module.__name__.rsplit(".", 1)[-1].startswith("test_exercises"):
        yield
        return
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
