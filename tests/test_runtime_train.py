"""lib.runtime, lib.train, lib.results, lib.checks."""
import json
import math

import pytest
import torch

from lib import checks, results, runtime, train


def test_profile_default_and_values(monkeypatch):
    monkeypatch.delenv("WORKBOOK_PROFILE", raising=False)
    assert runtime.profile() == "full"
    monkeypatch.setenv("WORKBOOK_PROFILE", "smoke")
    assert runtime.profile() == "smoke" and runtime.is_smoke()
    monkeypatch.setenv("WORKBOOK_PROFILE", "fast")
    with pytest.raises(ValueError, match="smoke"):
        runtime.profile()


def test_ci_variable_does_not_change_the_profile(monkeypatch):
    monkeypatch.delenv("WORKBOOK_PROFILE", raising=False)
    monkeypatch.setenv("CI", "true")
    assert runtime.profile() == "full"


def test_device(monkeypatch):
    monkeypatch.delenv("WORKBOOK_DEVICE", raising=False)
    assert runtime.device().type in ("cpu", "cuda", "mps")
    assert runtime.device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        runtime.device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            runtime.device("cuda")


def test_choose(monkeypatch):
    monkeypatch.setenv("WORKBOOK_PROFILE", "smoke")
    assert runtime.choose(smoke=dict(steps=2), full=dict(steps=100)) == {"steps": 2}
    monkeypatch.setenv("WORKBOOK_PROFILE", "full")
    assert runtime.choose(smoke=dict(steps=2), full=dict(steps=100)) == {"steps": 100}
    with pytest.raises(ValueError, match="same keys"):
        runtime.choose(smoke=dict(steps=2), full=dict(steps=100, batch=3))
    with pytest.raises(ValueError, match="override"):
        runtime.choose(smoke=dict(steps=2), full=dict(steps=100), cuda=dict(width=3))


def test_seed_everything_repeats():
    runtime.seed_everything(3)
    a = torch.randn(5)
    runtime.seed_everything(3)
    assert torch.equal(a, torch.randn(5))
    with pytest.raises(TypeError):
        runtime.seed_everything(1.5)


def test_train_loop_records_history_and_learns(monkeypatch):
    monkeypatch.setenv("WORKBOOK_PROFILE", "smoke")
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)

    def step(i):
        loss = (w - 3).pow(2).sum()
        opt.zero_grad(); loss.backward(); opt.step()
        return {"loss": loss, "w": w.detach().clone()}
    h = train.train_loop(step, 50)
    assert len(h["loss"]) == 50 and h["loss"][-1] < h["loss"][0] * 1e-3
    assert abs(h["w"][-1] - 3) < 1e-3


def test_train_loop_stops_on_nan(monkeypatch):
    monkeypatch.setenv("WORKBOOK_PROFILE", "smoke")
    with pytest.raises(FloatingPointError, match="diverged"):
        train.train_loop(lambda i: float("nan") if i == 3 else 1.0, 10)
    with pytest.raises(ValueError):
        train.train_loop(lambda i: 1.0, 0)


def test_batches_cover_the_data():
    x = torch.arange(10)
    stream = train.batches(x, batch_size=5, generator=torch.Generator().manual_seed(0))
    seen = torch.cat([next(stream)[0], next(stream)[0]])
    assert sorted(seen.tolist()) == list(range(10))
    with pytest.raises(ValueError, match="first dimension"):
        next(train.batches(torch.zeros(3), torch.zeros(4), batch_size=2))


def test_checkpoint_roundtrip_and_mismatch(tmp_path):
    m = torch.nn.Linear(3, 2)
    p = train.save_checkpoint(tmp_path / "m.pt", m, {"width": 3})
    m2 = torch.nn.Linear(3, 2)
    train.load_checkpoint(p, m2, {"width": 3})
    assert torch.equal(m.weight, m2.weight)
    with pytest.raises(ValueError, match="different config"):
        train.load_checkpoint(p, m2, {"width": 4})


def test_results_record_writes_json(tmp_path, monkeypatch, capsys):
    f = tmp_path / "r.jsonl"
    monkeypatch.setenv("WORKBOOK_RESULTS_FILE", str(f))
    results.record("accuracy", 97.5, "%", baseline=10, baseline_name="chance")
    results.record("nll", 1.2, "bits/dim")
    recs = [json.loads(l) for l in f.read_text().splitlines()]
    assert recs[0]["value"] == 97.5 and recs[0]["baseline"] == 10 and recs[1]["unit"] == "bits/dim"
    assert "accuracy: 97.5 %" in capsys.readouterr().out
    with pytest.raises(ValueError):
        results.record("bad", math.nan)


def test_checks_messages():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        checks.images(torch.zeros(3, 16, 16))
    with pytest.raises(ValueError, match="0..255"):
        checks.images(torch.full((1, 1, 4, 4), 200.0))
    with pytest.raises(ValueError, match="3 channel"):
        checks.images(torch.zeros(1, 1, 4, 4), channels=3)
    with pytest.raises(TypeError):
        checks.images(torch.zeros(1, 1, 4, 4).numpy())
    with pytest.raises(ValueError, match="binary"):
        checks.binary(torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match="probability"):
        checks.probability(1.5)
    with pytest.raises(ValueError, match="unknown"):
        checks.choice("x", ("a", "b"))


def test_checks_range_hint_names_the_expected_range():
    # 0..255 pixels where [0, 1] is expected: the hint must not suggest [-1, 1]
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide by 255 for \[0, 1\]") as e:
        checks.images(torch.full((1, 1, 4, 4), 200.0), lo=0.0, hi=1.0)
    assert "[-1, 1]" not in str(e.value) and "127.5" not in str(e.value)
    with pytest.raises(ValueError, match=r"0\.\.255 pixels: divide by 127.5 and subtract 1 for \[-1, 1\]"):
        checks.value_range(torch.tensor([0.0, 255.0]), -1, 1)
    with pytest.raises(ValueError, match=r"x / 255 \* 0.5 \+ 0.5 maps them to \[0.5, 1\]") as e:
        checks.value_range(torch.tensor([0.0, 255.0]), 0.5, 1.0)
    assert "[-1, 1]" not in str(e.value)
    with pytest.raises(ValueError) as e:                 # slightly out of range: no 0..255 hint
        checks.value_range(torch.tensor([1.2]), 0, 1)
    assert "255" not in str(e.value)


def test_checks_floating_nonempty_finite_timesteps_nonnegative():
    x = torch.zeros(3, 2)
    assert checks.floating(x) is x and checks.nonempty(x) is x and checks.finite(x) is x
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor, got dtype torch.int64"):
        checks.floating(torch.zeros(2, dtype=torch.long), "x0")
    with pytest.raises(TypeError, match="floating-point"):
        checks.floating(torch.zeros(2, dtype=torch.bool))
    with pytest.raises(TypeError):
        checks.floating([0.0])
    with pytest.raises(ValueError, match="non-empty batch"):
        checks.nonempty(torch.zeros(0, 2))
    with pytest.raises(ValueError, match="non-empty batch"):
        checks.nonempty(torch.tensor(1.0))
    with pytest.raises(ValueError, match="finite"):
        checks.finite(torch.tensor([1.0, math.inf]))
    with pytest.raises(ValueError, match="finite"):
        checks.finite(torch.tensor([math.nan]))
    t = torch.tensor([1, 5, 10])
    assert checks.timestep_tensor(t, 10) is t
    assert checks.timestep_tensor(torch.tensor([0, 9]), 9, first=0) is not None
    with pytest.raises(ValueError, match=r"time steps must lie in 1 \.\. T = 9, got \[1, 10\]"):
        checks.timestep_tensor(t, 9)
    with pytest.raises(ValueError, match=r"0 \.\. T = 10"):
        checks.timestep_tensor(torch.tensor([-1]), 10, first=0)
    with pytest.raises(TypeError, match="integer time steps"):
        checks.timestep_tensor(torch.tensor([1.0]), 10)
    with pytest.raises(TypeError, match="integer time steps"):
        checks.timestep_tensor(torch.tensor([True]), 10)
    assert checks.nonnegative(0) == 0.0 and checks.nonnegative(2.5, "w") == 2.5
    for bad in (-1e-9, math.nan, math.inf):
        with pytest.raises(ValueError, match="w must be a finite number >= 0"):
            checks.nonnegative(bad, "w")
    for bad in ("3", True, None):
        with pytest.raises(TypeError, match="w must be a finite number >= 0"):
            checks.nonnegative(bad, "w")
# --- train.fit ---------------------------------------------------------------------------

def _regression(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[2.0], [-1.0], [0.5]]) + 0.3
    return x, y


def test_fit_learns_a_small_regression(monkeypatch):
    monkeypatch.setenv("WORKBOOK_PROFILE", "smoke")
    x, y = _regression()
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 1)
    run = train.fit(lin, lambda xb, yb: ((lin(xb) - yb) ** 2).mean(), (x, y), 400,
                    batch_size=32, lr=0.05, generator=torch.Generator().manual_seed(0))
    assert len(run.history["loss"]) == 400 == run.steps
    assert run.history["loss"][-1] < 1e-4 < run.history["loss"][0]
    assert torch.allclose(lin.weight.detach(), torch.tensor([[2.0, -1.0, 0.5]]), atol=1e-2)
    assert run.model is lin and run.ema is None


def test_fit_equals_the_hand_written_loop_bit_for_bit(monkeypatch):
    """The contract that lets notebooks replace their loops: same batches, same updates."""
    monkeypatch.setenv("WORKBOOK_PROFILE", "smoke")
    x, y = _regression()

    def make():
        torch.manual_seed(1)
        return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    net = make()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=30, pct_start=0.1)
    stream = train.batches(x, y, batch_size=16, generator=torch.Generator().manual_seed(2))
    for _ in range(30):
        xb, yb = next(stream)
        loss = ((net(xb) - yb) ** 2).mean()
        opt.zero_grad(); loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step(); sched.step()
    net2 = make()
    train.fit(net2, lambda xb, yb: ((net2(xb) - yb) ** 2).mean(), (x, y), 30, batch_size=16,
              generator=torch.Generator().manual_seed(2), opt="adamw", lr=3e-3, weight_decay=0.01,
              schedule="onecycle", pct_start=0.1, clip_grad=1.0)
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.equal(a, b)


def test_fit_schedules_reach_the_given_rates(monkeypatch):
    monkeypatch.setenv("WORKBOOK_PROFILE", "smoke")
    w = torch.zeros(2, requires_grad=True)
    for schedule in ("onecycle", "cosine", None):
        opt = torch.optim.SGD([w], lr=1.0)
        used = []  # the rate each step's update is made with

        def loss():
            used.append(opt.param_groups[0]["lr"])
            return (w - 1).pow(2).sum()
        run = train.fit([w], loss, None, 100, opt=opt, lr=0.02, schedule=schedule, pct_start=0.25)
        assert run.opt is opt and len(used) == 100
        if schedule == "onecycle":
            assert max(used) == pytest.approx(0.02) and used.index(max(used)) in (24, 25)
            assert used[0] == pytest.approx(0.02 / 25) and used[-1] < 0.02 / 25
        elif schedule == "cosine":
            assert used[0] == pytest.approx(0.02) and used[-1] < 1e-4
            assert all(a >= b for a, b in zip(used, used[1:]))
        else:
            assert used == [0.02] * 100


def test_fit_keeps_an_ema_that_tracks(monkeypatch):
    monkeypatch.setenv("WORKBOOK_PROFILE", "smoke")
    torch.manual_seed(0)
    lin = torch.nn.Linear(1, 1)
    x = torch.linspace(-1, 1, 64)[:, None]
    run = train.fit(lin, lambda: ((lin(x) - 3 * x) ** 2).mean(), None, 300, lr=0.05, ema=0.9)
    assert run.ema.n == 300 and run.model is run.ema.model
    assert abs(float(run.ema.model.weight) - float(lin.weight.detach())) < 1e-3
    assert abs(float(run.ema.model.weight) - 3) < 1e-2
    # going on with the same optimiser and EMA
    run2 = train.fit(lin, lambda: ((lin(x) - 3 * x) ** 2).mean(), None, 5, opt=run.opt, ema=run.ema)
    assert run2.ema.n == 305 and run2.opt is run.opt


def test_fit_early_stopping_and_best_state(monkeypatch):
    monkeypatch.setenv("WORKBOOK_PROFILE", "smoke")
    torch.manual_seed(0)
    lin = torch.nn.Linear(1, 1, bias=False)
    x = torch.linspace(-1, 1, 32)[:, None]
    # the validation target (w = 1) is passed on the way to the training target (w = 3)
    val = lambda m: float(((m(x) - x) ** 2).mean())
    with torch.no_grad():
        lin.weight.fill_(0.0)
    run = train.fit(lin, lambda: ((lin(x) - 3 * x) ** 2).mean(), None, 500, opt="sgd", lr=0.05,
                    eval_fn=val, eval_every=5, patience=3, restore_best=True)
    assert run.steps < 500 and len(run.history["loss"]) == run.steps
    assert run.steps == run.best_step + 3 * 5
    assert [s for s, _ in run.evals][-1] == run.steps
    assert run.best_value == min(v for _, v in run.evals)
    assert val(lin) == pytest.approx(run.best_value)  # restored
    assert abs(float(lin.weight.detach()) - 1) < 0.3
    # keep_best without restoring: the model keeps its last weights, best_model() is a copy
    with torch.no_grad():
        lin.weight.fill_(0.0)
    run = train.fit(lin, lambda: ((lin(x) - 3 * x) ** 2).mean(), None, 200, opt="sgd", lr=0.05,
                    eval_fn=val, eval_every=5, keep_best=True)
    assert run.steps == 200 and float(lin.weight.detach()) > 2.5
    assert val(run.best_model()) == pytest.approx(run.best_value)
    assert run.best_value < val(lin)


def test_fit_refuses_bad_arguments(monkeypatch):
    monkeypatch.setenv("WORKBOOK_PROFILE", "smoke")
    lin = torch.nn.Linear(1, 1)
    x = torch.randn(8, 1)
    loss = lambda xb: lin(xb).pow(2).mean()
    with pytest.raises(ValueError, match="steps"):
        train.fit(lin, loss, x, 0, batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        train.fit(lin, loss, x, 3)
    with pytest.raises(ValueError, match="optimiser"):
        train.fit(lin, loss, x, 3, batch_size=4, opt="adagrad")
    with pytest.raises(ValueError, match="schedule"):
        train.fit(lin, loss, x, 3, batch_size=4, schedule="linear")
    with pytest.raises(ValueError, match="lr"):
        train.fit(lin, loss, x, 3, batch_size=4, lr=-1.0)
    with pytest.raises(ValueError, match="eval_fn"):
        train.fit(lin, loss, x, 3, batch_size=4, patience=2)
    with pytest.raises(TypeError, match="eval_every"):
        train.fit(lin, loss, x, 3, batch_size=4, eval_fn=lambda m: 0.0)
    with pytest.raises(TypeError, match="model"):
        train.fit("net", loss, x, 3, batch_size=4)
    with pytest.raises(TypeError, match="data"):
        train.fit(lin, loss, 3.0, 3)
    with pytest.raises(ValueError, match="loss_key"):
        train.fit(lin, lambda xb: {"nll": lin(xb).mean()}, x, 3, batch_size=4)
    with pytest.raises(ValueError, match="0-d"):
        train.fit(lin, lambda xb: lin(xb), x, 3, batch_size=4)
    with pytest.raises(FloatingPointError, match="diverged"):
        train.fit(lin, lambda xb: lin(xb).mean() * float("nan"), x, 3, batch_size=4)


def test_train_loop_summary_in_the_book_build_fits_the_column(monkeypatch, capsys):
    monkeypatch.setenv("WORKBOOK_PROFILE", "full")
    monkeypatch.setenv("WORKBOOK_STATIC", "1")
    losses = {"content": 0.123456, "adversarial": 1.5, "discriminator": 0.7, "perceptual": 2.0}
    train.train_loop(lambda i: losses, steps=3, desc="SRGAN (lambda=0.1), a long description")
    out = capsys.readouterr().out
    assert "3 steps in" in out and "perceptual 2" in out
    assert all(len(line) <= 88 for line in out.splitlines()), out


def test_workbook_threads_sets_torchs_thread_count_and_refuses_nonsense(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("WORKBOOK_THREADS", "1")
        assert runtime.threads() == 1
        runtime.setup(seed=0)
        assert torch.get_num_threads() == 1
        monkeypatch.delenv("WORKBOOK_THREADS")
        assert runtime.threads() is None
        for bad in ("0", "two", "-1", "1.5"):
            monkeypatch.setenv("WORKBOOK_THREADS", bad)
            with pytest.raises(ValueError, match="WORKBOOK_THREADS must be a whole number"):
                runtime.threads()
    finally:
        torch.set_num_threads(before)


def test_seed_shift_moves_the_notebooks_own_seeds_and_nothing_at_zero(monkeypatch):
    monkeypatch.delenv("WORKBOOK_SEED", raising=False)
    assert runtime.seed_offset() == 0
    a = torch.randn(4, generator=runtime.rng(7))
    assert torch.equal(a, torch.randn(4, generator=torch.Generator().manual_seed(7)))  # the book's seeds
    runtime.manual_seed(3)
    b = torch.rand(3)
    torch.manual_seed(3)
    assert torch.equal(b, torch.rand(3))
    monkeypatch.setenv("WORKBOOK_SEED", "2")
    assert runtime.seed_offset() == 2
    shifted = torch.randn(4, generator=runtime.rng(7))
    assert not torch.equal(shifted, a)
    assert torch.equal(shifted, torch.randn(4, generator=runtime.rng(7)))            # still repeatable
    assert not torch.equal(torch.randn(4, generator=runtime.rng(8)), shifted)         # seeds stay distinct
    monkeypatch.setenv("WORKBOOK_SEED", "1")
    assert not torch.equal(torch.randn(4, generator=runtime.rng(7)), shifted)         # each shift its own
    for bad in ("-1", "x", "1.5"):
        monkeypatch.setenv("WORKBOOK_SEED", bad)
        with pytest.raises(ValueError, match="WORKBOOK_SEED must be a whole number"):
            runtime.seed_offset()
    monkeypatch.setenv("WORKBOOK_SEED", "0")
    with pytest.raises(TypeError, match="seed must be an int"):
        runtime.rng(1.0)
