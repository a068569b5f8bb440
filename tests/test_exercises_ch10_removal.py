"""lib.exercises.ch10_removal: the checkers of the notebook on instruction-based object
removal pass the reference answer and fail wrong ones with a hint. Answers are computed as
the hidden solutions do, on a few test scenes and untrained networks (no training)."""

import pytest
import torch

from lib import exercises, removal
from exercise_testing import verdict


def fails(label, capsys, **answer):
    v = verdict(label, capsys, **answer)
    assert not v and len(v.message) > 30, v
    return v


@pytest.fixture(scope="module")
def removal_set():
    return removal.removal_examples("test", 24, 32, seed=0)


def remover(seed):
    """An untrained remover whose edits depend visibly on the words (FiLM scaled up)."""
    torch.manual_seed(seed)
    net = removal.InstructionRemover(width=4, text_dim=8)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, removal.FiLMBlock):
                m.film.weight.mul_(20)
    return net.eval()


# --- ch10-removal-nomask ---------------------------------------------------------------


def test_ch10_removal_nomask(removal_set, capsys):
    test = removal_set
    out = removal.apply_remover(remover(0), test)
    y0 = removal.apply_remover(remover(1), test)

    def answer(y):
        return dict(
            y0=y,
            l1_nomask=float((y - test.targets).abs().mean()),
            l1_noedit=float((test.inputs - test.targets).abs().mean()),
            right_nomask=100 * removal.right_object_rate(y, test),
        )

    ref = answer(y0)
    v = verdict("ch10-removal-nomask", capsys, test=test, out=out, **ref)
    assert v and "no edit" in v.message
    # a perfect remover: 100% right object; a fraction instead of a percentage is fine too
    exact = removal.remove_objects(test, test.target)
    assert verdict("ch10-removal-nomask", capsys, test=test, out=out, **answer(exact))
    frac = dict(answer(exact), right_nomask=1.0)
    assert verdict("ch10-removal-nomask", capsys, test=test, out=out, **frac)
    wrong = [
        answer(out),  # the edits of the network trained with the mask loss
        dict(ref, l1_nomask=0.0, l1_noedit=0.0),  # zeros
        dict(ref, l1_nomask=ref["l1_noedit"], l1_noedit=ref["l1_nomask"]),  # swapped
        dict(ref, l1_nomask=ref["l1_nomask"] * 3 * 32 * 32),  # summed over pixels
        dict(answer(exact), right_nomask=50.0),
        dict(answer(exact), right_nomask=0.0),  # the rate of another edit
    ]
    for w in wrong:
        fails("ch10-removal-nomask", capsys, test=test, out=out, **w)
    with pytest.raises(TypeError, match="RemovalSet"):
        exercises.check("ch10-removal-nomask", test=test.inputs, out=out, **ref)
    with pytest.raises(ValueError, match="shape"):
        exercises.check(
            "ch10-removal-nomask", test=test, out=out, **dict(ref, y0=y0[:, :1])
        )


# --- ch10-removal-ambiguous ------------------------------------------------------------


def look_alike_pairs(test):
    """As the solution: scenes with two objects of the same colour and shape."""
    rows, texts, pairs = [], [], []
    for i, sc in enumerate(test.scenes):
        kinds = [(o.colour, o.shape) for o in sc.objects]
        pair = [j for j in range(len(sc.objects)) if kinds.count(kinds[j]) == 2]
        if len(pair) == 2:
            rows.append(i)
            pairs.append(pair)
            o = sc.objects[pair[0]]
            texts.append(f"remove the {o.colour} {o.shape}")
    return rows, texts, pairs


def pair_fractions(net, amb, tokens, pairs):
    f = removal.removal_fractions(removal.apply_remover(net, amb, tokens=tokens), amb)
    return torch.stack([f[r, p] for r, p in enumerate(pairs)])


def test_ch10_removal_ambiguous(removal_set, capsys):
    test, net = removal_set, remover(2)
    rows, texts, pairs = look_alike_pairs(test)
    assert len(rows) >= 4, "the fixture has ambiguous scenes"
    amb = test.subset(rows)
    both = pair_fractions(net, amb, removal.tokenize_instruction(texts), pairs)
    common = dict(net=net, test=test)
    v = verdict("ch10-removal-ambiguous", capsys, **common, rows=rows, both=both)
    assert v and f"{len(rows)} ambiguous scenes" in v.message
    # the two fractions of a scene may come in either order; a list of lists is fine
    flipped = both.flip(1).tolist()
    assert verdict("ch10-removal-ambiguous", capsys, **common, rows=rows, both=flipped)
    own = pair_fractions(net, amb, amb.tokens, pairs)
    assert not torch.allclose(own, both, atol=0.01), "the words matter to this net"
    wrong = [
        dict(rows=rows[1:], both=both[1:]),  # a scene left out
        dict(rows=rows + rows[:1], both=torch.cat([both, both[:1]])),  # one twice
        dict(rows=rows, both=own),  # each scene's own (unambiguous) instruction
        dict(rows=rows, both=torch.zeros_like(both)),  # zeros
        dict(rows=rows, both=both.roll(1, 0)),  # shuffled scenes
        dict(rows=rows, both=both * 100),  # percentages
    ]
    for w in wrong:
        fails("ch10-removal-ambiguous", capsys, **common, **w)
    v = fails("ch10-removal-ambiguous", capsys, **common, rows=rows, both=own)
    assert "own instruction" in v.message
    with pytest.raises(ValueError, match="shape"):
        exercises.check("ch10-removal-ambiguous", **common, rows=rows, both=both[:, :1])
    with pytest.raises(TypeError, match="rows"):
        exercises.check("ch10-removal-ambiguous", **common, rows="all", both=both)
    with pytest.raises(TypeError, match="InstructionRemover"):
        exercises.check(
            "ch10-removal-ambiguous", net=None, test=test, rows=rows, both=both
        )
