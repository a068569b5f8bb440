"""lib.exercises: the verdict machinery, and chapter 1's checkers (reference passes, wrong fails).

The chapter files tests/test_exercises_chNN.py do the same for the other chapters. Reference
answers here are computed the way a student would (as the hidden solutions do), never by
calling the checker's own code.
"""

import pytest
import torch

from lib import data, density, exercises
from exercise_testing import verdict


# --- the machinery --------------------------------------------------------------------


def test_unknown_label_and_wrong_keywords_raise():
    with pytest.raises(ValueError, match="no check for exercise 'ch99-nope'"):
        exercises.check("ch99-nope", x=1)
    with pytest.raises(TypeError, match="missing: test_loglik"):
        exercises.check("ch01-ridge", x_train=torch.zeros(3, 4), rank=1)
    with pytest.raises(TypeError, match="unexpected: colour"):
        exercises.check(
            "ch01-ridge", x_train=torch.zeros(3, 4), rank=1, test_loglik={}, colour=2
        )
    with pytest.raises(TypeError, match="exercise label"):
        exercises.check(3)


def test_strict_mode_turns_not_yet_into_an_error(monkeypatch, capsys):
    x = torch.randn(20, 1, 2, 2)
    answer = dict(x_train=x, rank=0, test_loglik={1e-3: 1.0, 1e-2: 0.5, 1e-1: 0.0})
    v = exercises.check("ch01-ridge", **answer)
    assert not v and "not yet" in str(v)
    monkeypatch.setenv("WORKBOOK_CHECKS", "strict")
    with pytest.raises(exercises.ExerciseNotPassed, match=r"\[ch01-ridge\] not yet"):
        exercises.check("ch01-ridge", **answer)


def test_number_helpers_reject_nan_and_wrong_kinds():
    with pytest.raises(exercises.NotYet, match="NaN"):
        exercises.number(float("nan"), "loss")
    with pytest.raises(TypeError, match="must be a number"):
        exercises.number("3", "loss")
    with pytest.raises(TypeError, match="single number"):
        exercises.number([1.0, 2.0], "loss")
    with pytest.raises(ValueError, match="must hold 3 numbers"):
        exercises.numbers([1, 2], "xs", length=3)
    assert exercises.number(torch.tensor(2.5), "x") == 2.5


def test_every_chapter_module_registers_its_checkers():
    labels = exercises.labels()
    assert {"ch01-ridge", "ch01-copy", "ch01-single"} <= set(labels)
    assert all(label.startswith("ch") for label in labels)


# --- chapter 1 ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    x_train, y_train = data.digits("train")
    x_test, _ = data.digits("test")
    return x_train, y_train, x_test


def test_ch01_ridge(digits, capsys):
    x_train, y_train, x_test = digits
    D = x_train[0].numel()
    loglik = {}
    for reg in (1e-4, 1e-3, 1e-2, 1e-1):
        m = density.ClassGaussians(reg=reg).fit(x_train, y_train)
        loglik[reg] = m.log_prob(x_test).mean().item() / D
    rank = torch.linalg.matrix_rank(x_train.flatten(1).double()).item()
    assert verdict("ch01-ridge", capsys, x_train=x_train, rank=rank, test_loglik=loglik)
    wrong = [
        dict(rank=x_train.shape[1] * 256, test_loglik=loglik),  # the number of pixels
        dict(rank=0, test_loglik=loglik),  # zeros
        dict(rank=rank, test_loglik={k: v * D for k, v in loglik.items()}),  # per image
        dict(
            rank=rank, test_loglik=dict(zip(loglik, reversed(loglik.values())))
        ),  # shuffled
    ]
    for w in wrong:
        v = verdict("ch01-ridge", capsys, x_train=x_train, **w)
        assert not v and len(v.message) > 30
    with pytest.raises(TypeError, match="at least three"):
        exercises.check(
            "ch01-ridge", x_train=x_train, rank=rank, test_loglik={1e-3: 1.0}
        )


def test_ch01_copy(digits, capsys):
    x_train, y_train, x_test = digits
    gauss = density.ClassGaussians(reg=1e-2).fit(x_train, y_train)
    samples = gauss.sample(200, generator=torch.Generator().manual_seed(1))[0]

    def median_nn(x):
        return torch.cdist(x.flatten(1), x_train.flatten(1)).min(1).values.median()

    d_s, d_t = median_nn(samples), median_nn(x_test)
    common = dict(samples=samples, x_train=x_train, x_test=x_test)
    assert verdict(
        "ch01-copy", capsys, **common, d_samples=d_s, d_test=d_t, copies=False
    )
    # a model that copies: its samples *are* training digits
    copied = x_train[:200] + 0.01 * torch.randn_like(x_train[:200])
    d_c = median_nn(copied)
    assert verdict(
        "ch01-copy",
        capsys,
        samples=copied,
        x_train=x_train,
        x_test=x_test,
        d_samples=d_c,
        d_test=d_t,
        copies=True,
    )
    wrong = [
        dict(d_samples=d_s, d_test=d_t, copies=True),  # wrong conclusion
        dict(d_samples=0.0, d_test=0.0, copies=False),  # zeros
        dict(d_samples=d_s**2, d_test=d_t**2, copies=False),  # squared distances
        dict(d_samples=d_t, d_test=d_s, copies=False),  # swapped
    ]
    for w in wrong:
        v = verdict("ch01-copy", capsys, **common, **w)
        assert not v and "not yet" in str(v)
    with pytest.raises(TypeError, match="True or False"):
        exercises.check("ch01-copy", **common, d_samples=d_s, d_test=d_t, copies="no")


def test_ch01_single(digits, capsys):
    x_train, y_train, x_test = digits
    D = x_train[0].numel()
    one = density.ClassGaussians(reg=1e-2).fit(x_train, torch.zeros_like(y_train))
    per = density.ClassGaussians(reg=1e-2).fit(x_train, y_train)
    s = one.log_prob(x_test).mean().item() / D
    p = per.log_prob(x_test).mean().item() / D
    common = dict(x_train=x_train, x_test=x_test, reg=1e-2)
    assert verdict("ch01-single", capsys, **common, single_loglik=s, per_class_loglik=p)
    wrong = [
        dict(single_loglik=p, per_class_loglik=s),  # swapped
        dict(single_loglik=0.0, per_class_loglik=0.0),  # zeros
        dict(single_loglik=s * D, per_class_loglik=p * D),  # per image, not per pixel
        dict(single_loglik=float("nan"), per_class_loglik=p),
    ]
    for w in wrong:
        assert not verdict("ch01-single", capsys, **common, **w)


# --- every exercise of the book answers back ------------------------------------------


def _notebook_exercises():
    import re
    import sys
    from pathlib import Path

    import nbformat

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "tools"))
    import nbtool

    out = []
    for path in sorted(root.glob("chapters/*/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        inside, calls = None, {}
        for c in nb.cells:
            if c.cell_type == "markdown":
                for kind, label in re.findall(
                    r":::\{solution-(start|end)\}\s*(\S*)", c.source
                ):
                    inside = label if kind == "start" else None
            for label in re.findall(r"exercises\.check\(\s*\"([^\"]+)\"", c.source):
                assert c.cell_type == "code" and inside is None, (
                    f"{label}: check outside the solution"
                )
                calls[label] = calls.get(label, 0) + 1
        md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        for label, _ in nbtool.exercises(nb):
            box = re.search(
                r":label: "
                + re.escape(label)
                + r"\n.*?\n:::\n(.*?):::\{solution-start\}",
                md,
                re.S,
            )
            rubric = bool(box and ":::{admonition} Check yourself" in box.group(1))
            out.append((path.name, label, calls.get(label, 0), rubric))
    return out


def test_every_exercise_has_a_check_or_a_rubric():
    found = _notebook_exercises()
    assert len(found) >= 55
    silent = [
        (nb, label) for nb, label, calls, rubric in found if not calls and not rubric
    ]
    assert not silent, f"exercises with neither a check nor a rubric: {silent}"
    twice = [(nb, label) for nb, label, calls, _ in found if calls > 1]
    assert not twice, f"exercises checked more than once: {twice}"


def test_every_checker_is_called_by_its_exercise():
    called = {label for _, label, calls, _ in _notebook_exercises() if calls}
    assert set(exercises.labels()) == called, (
        f"checkers without a check cell: {sorted(set(exercises.labels()) - called)}; "
        f"check cells without a checker: {sorted(called - set(exercises.labels()))}"
    )


def test_a_verdict_is_printed_wrapped_to_the_books_column(capsys):
    words = [f"word{i}" for i in range(60)]  # 410 characters
    v = exercises.Verdict("ch01-ridge", True, " ".join(words) + "\nsecond paragraph")
    lines = str(v).splitlines()
    assert len(lines) > 3 and all(len(line) <= exercises.WIDTH for line in lines)
    assert lines[0].startswith("[ch01-ridge] on track: word0") and lines[-1] == "second paragraph"
    assert str(v).split() == ["[ch01-ridge]", "on", "track:", *words, "second", "paragraph"]
