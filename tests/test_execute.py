"""tools/execute.py: the book's notebooks executed (several at once) into the build's cache."""
import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import execute  # noqa: E402

RECORD = """import json, os, torch
n = int(os.environ.get("WORKBOOK_THREADS", "0"))
if n:
    torch.set_num_threads(n)
fig = {"name": "threads", "value": float(torch.get_num_threads()), "unit": "",
       "device": "cpu", "profile": os.environ["WORKBOOK_PROFILE"]}
with open(os.environ["WORKBOOK_RESULTS_FILE"], "a") as f:
    f.write(json.dumps(fig) + "\\n")
print("static", os.environ["WORKBOOK_STATIC"], "seed", os.environ["WORKBOOK_SEED"])"""


def _book(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.py").write_text("X = 1\n")
    paths = []
    for name, code in (("one", RECORD), ("two", "print(2 + 2)")):
        p = tmp_path / "chapters" / f"{name}.ipynb"
        p.parent.mkdir(exist_ok=True)
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, p)
        paths.append(p)
    return paths


def test_execute_fills_the_cache_writes_records_and_reruns_only_what_changed(tmp_path):
    nbs = _book(tmp_path)
    kw = dict(profile="smoke", cache_path=tmp_path / "cache", jobs=2, threads=1, timeout=120,
              records=tmp_path / "records", root=tmp_path)
    done, _ = execute.run(nbs, **kw)
    assert [r["notebook"] for r in done] == ["chapters/one.ipynb", "chapters/two.ipynb"]
    assert all(r["error"] is None for r in done)
    rec = json.loads((tmp_path / "records" / "smoke" / "chapters" / "one.ipynb.json").read_text())
    assert rec["figures"][0]["value"] == 1.0 and rec["threads"] == 1   # the kernel got one thread
    assert rec["figures"][0]["profile"] == "smoke" and "nb" not in rec
    assert rec["phases"]["evaluation"] > 0          # cell times were recorded (importing torch takes time)

    from jupyter_cache import get_cache
    cache = get_cache(str(tmp_path / "cache"))
    hit = cache.match_cache_notebook(nbformat.read(nbs[0], as_version=4))  # what the book build does
    _, merged = cache.merge_match_into_notebook(nbformat.read(nbs[0], as_version=4))
    assert hit.pk == rec["cache_pk"]
    assert merged.cells[0].outputs[0]["text"] == "static 1 seed 0\n"    # executed as the static book

    assert execute.run(nbs, **kw)[0] == []                                # nothing changed: nothing runs
    nb = nbformat.read(nbs[1], as_version=4)
    nb.cells[0].source = "print(3 + 3)"
    nbformat.write(nb, nbs[1])
    assert [r["notebook"] for r in execute.run(nbs, **kw)[0]] == ["chapters/two.ipynb"]  # code changed
    (tmp_path / "lib" / "a.py").write_text("X = 2\n")                    # library changed: all stale
    assert len(execute.run(nbs, **kw)[0]) == 2
    assert len(execute.run(nbs, **kw, force=True)[0]) == 2


def test_a_failing_notebook_is_reported_and_not_cached(tmp_path):
    nbs = _book(tmp_path)
    nb = nbformat.read(nbs[1], as_version=4)
    nb.cells[0].source = "raise RuntimeError('broken on purpose')"
    nbformat.write(nb, nbs[1])
    kw = dict(profile="smoke", cache_path=tmp_path / "cache", jobs=1, threads=None, timeout=120,
              records=tmp_path / "records", root=tmp_path)
    done, _ = execute.run(nbs[1:], **kw)
    assert "broken on purpose" in done[0]["error"] and "RuntimeError" in done[0]["traceback"]
    assert not (tmp_path / "records" / "smoke" / "chapters" / "two.ipynb.json").exists()
    assert len(execute.run(nbs[1:], **kw)[0]) == 1                       # still stale: runs again


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        execute.run([], profile="smoke", cache_path=tmp_path, jobs=0, threads=1)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        execute.run([], profile="smoke", cache_path=tmp_path, jobs=1, threads=0)
    with pytest.raises(SystemExit, match="matches no notebook"):
        execute.select("no-such-notebook")


def test_a_seed_shifted_run_keeps_its_records_apart_and_leaves_the_cache_alone(tmp_path):
    nbs = _book(tmp_path)[:1]
    kw = dict(profile="smoke", cache_path=tmp_path / "cache", jobs=1, threads=1, timeout=120,
              records=tmp_path / "records", root=tmp_path)
    done, _ = execute.run(nbs, **kw, seed=2)
    assert done[0]["error"] is None and done[0]["seed"] == 2
    assert (tmp_path / "records" / "smoke-seed2" / "chapters" / "one.ipynb.json").exists()
    assert not (tmp_path / "records" / "smoke").exists()
    from jupyter_cache import get_cache
    with pytest.raises(KeyError):   # the book's cache holds no seed-shifted outputs
        get_cache(str(tmp_path / "cache")).match_cache_notebook(nbformat.read(nbs[0], as_version=4))
    assert len(execute.run(nbs, **kw, seed=2)[0]) == 1                   # a robustness run always runs
    with pytest.raises(ValueError, match="seed must be a whole number"):
        execute.run(nbs, **kw, seed=-1)


def test_longest_notebooks_start_first_using_the_bench_times_on_a_first_run(tmp_path):
    from jupyter_cache import get_cache
    nbs = _book(tmp_path)
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "results-cpu.json").write_text(json.dumps({"notebooks": [
        {"notebook": "chapters/one.ipynb", "seconds": 5.0}, {"notebook": "chapters/two.ipynb", "seconds": 50.0}]}))
    todo, fresh = execute.plan(nbs, get_cache(str(tmp_path / "cache")), "smoke",
                               records=tmp_path / "records", root=tmp_path)
    assert todo == nbs[::-1] and fresh == []


def test_cell_time_is_split_into_training_evaluation_and_plotting():
    def cell(src, start, end):
        c = nbformat.v4.new_code_cell(src)
        c.metadata["execution"] = {"iopub.execute_input": f"2026-01-01T00:00:{start:02d}.000000Z",
                                   "shell.execute_reply": f"2026-01-01T00:00:{end:02d}.500000Z"}
        return c
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# t"),
        cell("hist = train.fit(model, loss, x, 100)", 0, 10),        # 10.5 s training
        cell("loss.backward()\nopt.step()", 11, 12),                    # 1.5 s training
        cell("fdd = metrics.frechet_digit_distance(s)", 13, 15),        # 2.5 s evaluation
        cell("viz.show_images(s)\nplt.show()", 16, 16),                 # 0.5 s plotting
        nbformat.v4.new_code_cell("never ran")])
    prof = execute.profile_cells(nb, top=2)
    assert prof["phases"] == {"training": 12.0, "evaluation": 2.5, "plotting": 0.5}
    assert prof["slowest"] == [[1, 10.5, "hist = train.fit(model, loss, x, 100)"],
                               [3, 2.5, "fdd = metrics.frechet_digit_distance(s)"]]


def test_several_seeds_run_in_one_pool_and_seed_zero_is_the_books_run(tmp_path):
    nbs = _book(tmp_path)[:1]
    done, _ = execute.run(nbs, profile="smoke", cache_path=tmp_path / "cache", jobs=2, threads=1,
                          timeout=120, records=tmp_path / "records", root=tmp_path, seed=[0, 3])
    assert [r["seed"] for r in done] == [0, 3] and all(r["error"] is None for r in done)
    assert (tmp_path / "records" / "smoke" / "chapters" / "one.ipynb.json").exists()
    assert (tmp_path / "records" / "smoke-seed3" / "chapters" / "one.ipynb.json").exists()
    from jupyter_cache import get_cache
    hit = get_cache(str(tmp_path / "cache")).match_cache_notebook(nbformat.read(nbs[0], as_version=4))
    _, merged = get_cache(str(tmp_path / "cache")).merge_match_into_notebook(nbformat.read(nbs[0], as_version=4))
    assert hit.pk == done[0]["cache_pk"] and "seed 0" in merged.cells[0].outputs[0]["text"]
    with pytest.raises(ValueError, match="seed must be a whole number"):
        execute.run(nbs, profile="smoke", cache_path=tmp_path / "cache", jobs=1, threads=1, seed=[])
