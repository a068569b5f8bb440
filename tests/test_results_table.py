"""lib.results.table: one rendered comparison table whose recorded figures are its cells."""
import html
import json
import re
import math

import pytest

from lib import results


ROWS = {"bicubic": {"PSNR": 24.125, "SSIM": 0.71},
        "SRResNet": {"PSNR": 25.5, "SSIM": math.nan},
        "SRGAN": (25.0, None)}


def _table(**kw):
    return results.Table(ROWS, ["PSNR", "SSIM"], title="x4 super-resolution", units={"PSNR": "dB"},
                         higher_is_better={"PSNR": True, "SSIM": True}, **kw)


def test_table_renders_html_with_units_missing_values_and_the_winner_in_bold():
    t = _table(winner="SRResNet")
    h = t._repr_html_()
    assert h.startswith("<table") and "</table>" in h and "<caption>x4 super-resolution</caption>" in h
    assert "PSNR (dB) ↑" in h and "<strong>25.5</strong>" in h          # best PSNR is bold
    assert "<strong>24.12</strong>" not in h and "24.12" in h
    assert "nan" not in h.lower() and h.count(results.MISSING) == 2     # nan and None
    assert "<strong>SRResNet</strong>" in h
    assert "<strong>0.71</strong>" not in h                              # one number: nothing to compare
    md = t._repr_markdown_()
    assert "| method | PSNR (dB) ↑ | SSIM ↑ |" in md and "**25.5**" in md and "nan" not in md.lower()
    text = str(t)
    assert text.splitlines()[0] == "x4 super-resolution" and "25.5*" in text and "nan" not in text


def test_table_lower_is_better_ties_and_text_cells():
    t = results.Table({"a": [1.0, "n/a"], "b": [1.0, "x"], "c": [3.0, "y"]}, ["FDD", "note"], title="t",
                      higher_is_better={"FDD": False}, formats={"FDD": ".2f"})
    assert t.bold["a"]["FDD"] and t.bold["b"]["FDD"] and not t.bold["c"]["FDD"]
    assert t.text["c"] == {"FDD": "3.00", "note": "y"} and not any(t.bold[r]["note"] for r in "abc")
    assert "FDD ↓" in t._repr_html_()


def test_table_records_exactly_the_numbers_it_shows(tmp_path, monkeypatch, capsys):
    f = tmp_path / "r.jsonl"
    monkeypatch.setenv("WORKBOOK_RESULTS_FILE", str(f))
    monkeypatch.delenv("WORKBOOK_STATIC", raising=False)
    assert results.table(ROWS, ["PSNR", "SSIM"], title="x4 SR", units={"PSNR": "dB"}, higher_is_better=True,
                         record={"SR PSNR, SRResNet": ("SRResNet", "PSNR", "bicubic"),
                                 "SR SSIM, bicubic": ("bicubic", "SSIM"),
                                 "SR PSNR, SRGAN": ("SRGAN", "PSNR", "SRResNet", "SRResNet (pixel loss)")}) is None
    out = capsys.readouterr().out
    assert out.startswith("x4 SR\n")  # outside a kernel: the plain-text table
    recs = {r["name"]: r for r in map(json.loads, f.read_text().splitlines())}
    t = results.Table(ROWS, ["PSNR", "SSIM"], title="x4 SR", units={"PSNR": "dB"}, higher_is_better=True)
    assert recs["SR PSNR, SRResNet"]["value"] == ROWS["SRResNet"]["PSNR"] == t.value("SRResNet", "PSNR")
    assert recs["SR PSNR, SRResNet"]["baseline"] == 24.125 and recs["SR PSNR, SRResNet"]["baseline_name"] == "bicubic"
    assert recs["SR PSNR, SRResNet"]["unit"] == "dB" and recs["SR PSNR, SRResNet"]["higher_is_better"] is True
    assert recs["SR SSIM, bicubic"] == {**recs["SR SSIM, bicubic"], "value": 0.71, "unit": ""}
    assert "baseline" not in recs["SR SSIM, bicubic"]
    assert recs["SR PSNR, SRGAN"]["baseline_name"] == "SRResNet (pixel loss)"
    for r in recs.values():  # the shown text is the recorded value, formatted
        assert format(r["value"], ".4g") in out


def test_table_cannot_record_a_missing_cell_and_rejects_bad_input():
    with pytest.raises(ValueError, match="holds no number"):
        results.table(ROWS, ["PSNR", "SSIM"], title="t", record={"x": ("SRResNet", "SSIM")})
    with pytest.raises(ValueError, match="unknown row"):
        results.table(ROWS, ["PSNR", "SSIM"], title="t", record={"x": ("nope", "PSNR")})
    with pytest.raises(ValueError, match=r"\(row, column"):
        results.table(ROWS, ["PSNR", "SSIM"], title="t", record={"x": "SRResNet"})
    with pytest.raises(ValueError, match="title"):
        results.Table(ROWS, ["PSNR", "SSIM"], title="")
    with pytest.raises(ValueError, match="unknown columns"):
        results.Table({"a": {"PSNR": 1, "LPIPS": 2}}, ["PSNR"], title="t")
    with pytest.raises(ValueError, match="unknown columns"):
        results.Table({"a": {"PSNR": 1}}, ["PSNR"], title="t", units={"SSIM": ""})
    with pytest.raises(ValueError, match="2 values for 1 columns"):
        results.Table({"a": (1, 2)}, ["PSNR"], title="t")
    with pytest.raises(ValueError, match="winner"):
        results.Table({"a": (1,)}, ["PSNR"], title="t", winner="b")
    with pytest.raises(TypeError, match="non-empty dict"):
        results.Table([("a", 1)], ["PSNR"], title="t")
    with pytest.raises(TypeError, match="a number, a string or None"):
        results.Table({"a": ([1],)}, ["PSNR"], title="t")
    with pytest.raises(ValueError, match="unique"):
        results.Table({"a": (1, 2)}, ["PSNR", "PSNR"], title="t")


def test_record_echoes_only_outside_the_static_book(monkeypatch, capsys):
    monkeypatch.delenv("WORKBOOK_RESULTS_FILE", raising=False)
    monkeypatch.setenv("WORKBOOK_STATIC", "1")
    results.record("accuracy", 97.5, "%")
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("WORKBOOK_STATIC", "0")
    results.record("accuracy", 97.5, "%")
    assert "accuracy: 97.5 %" in capsys.readouterr().out


def test_a_figure_is_a_claim_unless_it_is_recorded_as_a_reference(tmp_path, monkeypatch, capsys):
    f = tmp_path / "r.jsonl"
    monkeypatch.setenv("WORKBOOK_RESULTS_FILE", str(f))
    monkeypatch.delenv("WORKBOOK_STATIC", raising=False)
    results.table(ROWS, ["PSNR", "SSIM"], title="x4 SR", units={"PSNR": "dB"}, higher_is_better=True,
                  record={"SR PSNR, SRResNet": ("SRResNet", "PSNR", "bicubic"),
                          "SR PSNR, bicubic vs SRResNet": ("bicubic", "PSNR", "SRResNet")},
                  references=["SR PSNR, bicubic vs SRResNet"])
    results.record("memoriser distance", 0.0, kind="reference")
    kinds = {r["name"]: r["kind"] for r in map(json.loads, f.read_text().splitlines())}
    assert kinds == {"SR PSNR, SRResNet": "claim", "SR PSNR, bicubic vs SRResNet": "reference",
                     "memoriser distance": "reference"}
    with pytest.raises(ValueError, match="kind must be one of"):
        results.record("x", 1.0, kind="lesson")
    with pytest.raises(ValueError, match="references must name figures of record="):
        results.table(ROWS, ["PSNR", "SSIM"], title="t", record={"a": ("SRResNet", "PSNR")}, references=["b"])


def test_record_leaves_an_invisible_copy_in_the_static_page(monkeypatch):
    shown = []
    monkeypatch.setenv("WORKBOOK_STATIC", "1")
    monkeypatch.delenv("WORKBOOK_RESULTS_FILE", raising=False)
    monkeypatch.setattr(results, "get_ipython", lambda: object())   # as inside a kernel
    monkeypatch.setattr(results, "display", lambda obj, raw=False: shown.append(obj))
    results.record('PSNR "x" <y>', 25.5, "dB")
    (html_text,) = [o["text/html"] for o in shown]
    m = re.fullmatch(r'<span class="workbook-figure" hidden data-figure="([^"]*)"></span>', html_text)
    assert json.loads(html.unescape(m.group(1))) == {"name": 'PSNR "x" <y>', "value": 25.5, "unit": "dB"}


def test_text_columns_are_left_aligned_and_number_columns_right_aligned():
    t = results.Table({"a": (1.5, "sharp edges"), "b": (None, "blur")}, ["PSNR", "note"], title="t")
    assert t.numeric == {"PSNR": True, "note": False}
    h = t._repr_html_()
    assert '<th style="text-align: right">PSNR</th>' in h and '<th style="text-align: left">note</th>' in h
    assert '<td style="text-align: right">1.5</td>' in h and '<td style="text-align: left">sharp edges</td>' in h
    assert '<td style="text-align: right">—</td>' in h                 # a missing number stays a number cell
    assert "| :--- | ---: | :--- |" in t._repr_markdown_()
    lines = str(t).splitlines()
    assert lines[3].startswith("a") and "1.5  sharp edges" in lines[3]  # text starts in its column
    assert lines[4].endswith("—  blur")                                  # padded right, not left


def test_reference_rows_are_never_marked_best():
    rows = {"real digits (floor)": (3.0, 0.0), "Gaussians": (40.0, 2.0), "DCGAN": (20.0, 1.0),
            "best of 8 (oracle)": (10.0, 0.5), "real digits, 64 of them": (8.0, 0.0)}
    t = results.Table(rows, ["FDD", "copies"], title="t", higher_is_better=False)
    # by their label: a mark, or real data
    assert t.references == ["real digits (floor)", "best of 8 (oracle)", "real digits, 64 of them"]
    assert [r for r in ["Ground truth", "original (true colours)", "unreal model", "surreal (ours)"]
            if results.is_reference_row(r)] == ["Ground truth", "original (true colours)"]
    assert [r for r in rows if t.bold[r]["FDD"]] == ["DCGAN"]             # not the floor's 3.0
    assert [r for r in rows if t.bold[r]["copies"]] == ["DCGAN"]
    h = t._repr_html_()
    assert "<strong>3</strong>" not in h and "<strong>20</strong>" in h
    assert '<tr class="workbook-reference"><th style="text-align: left"><em>real digits (floor)</em>' in h
    assert "| *real digits (floor)* |" in t._repr_markdown_()
    named = results.Table(rows, ["FDD", "copies"], title="t", higher_is_better=False,
                          reference_rows=["Gaussians"])
    assert named.references == ["Gaussians"] and named.bold["real digits (floor)"]["FDD"]
    with pytest.raises(ValueError, match="reference_rows must be row labels"):
        results.Table(rows, ["FDD", "copies"], title="t", reference_rows=["nope"])
    with pytest.raises(ValueError, match="cannot be a reference row"):
        results.Table(rows, ["FDD", "copies"], title="t", winner="real digits (floor)")


SPAN = re.compile(r'<span class="workbook-number" data-record="([^"]*)" data-field="(\w+)">([^<]*)</span>')


def test_a_recorded_figure_formats_itself_as_a_number_tagged_with_its_name(monkeypatch, capsys):
    monkeypatch.delenv("WORKBOOK_RESULTS_FILE", raising=False)
    monkeypatch.setenv("WORKBOOK_STATIC", "1")
    results.table(ROWS, ["PSNR", "SSIM"], title="x4 SR", units={"PSNR": "dB"}, higher_is_better=True,
                  record={'SR PSNR, "SRGAN"': ("SRGAN", "PSNR", "SRResNet")})
    results.record("bits", 1.2345e-3, "bits/dim")
    capsys.readouterr()
    f = results.figure('SR PSNR, "SRGAN"')
    assert float(f) == f.value == 25.0 and f.unit == "dB"
    got = SPAN.findall(f"gain {f.gain:+.2f} dB over {f.baseline:.1f} dB, ratio {f.ratio:.3f}, {f}")
    assert [(html.unescape(n), fld, t) for n, fld, t in got] == [
        ('SR PSNR, "SRGAN"', "gain", "\u22120.50"), ('SR PSNR, "SRGAN"', "baseline", "25.5"),
        ('SR PSNR, "SRGAN"', "ratio", "0.980"), ('SR PSNR, "SRGAN"', "value", "25")]
    assert SPAN.findall(f"{results.figure('bits'):.2e}") == [("bits", "value", "1.23e\u221203")]
    with pytest.raises(ValueError, match="format spec"):
        format(f, ".1%")
    with pytest.raises(ValueError, match="without a baseline"):
        results.figure("bits").gain
    with pytest.raises(ValueError, match="no figure recorded under 'nope'"):
        results.figure("nope")
    results.record("bits", 2.0)                       # the figure recorded last under a name
    assert results.figure("bits").value == 2.0


def test_say_shows_markdown_in_a_kernel_and_plain_text_elsewhere(monkeypatch, capsys):
    monkeypatch.delenv("WORKBOOK_RESULTS_FILE", raising=False)
    monkeypatch.setenv("WORKBOOK_STATIC", "1")
    results.record("acc", 97.25, "%", baseline=90.0)
    f = results.figure("acc")
    results.say(f"accuracy {f:.1f}% (*{f.gain:+.1f}* points)")
    assert capsys.readouterr().out == "accuracy 97.2% (*+7.2* points)\n"
    shown = []
    monkeypatch.setattr(results, "get_ipython", lambda: object())
    monkeypatch.setattr(results, "display", lambda obj, raw=False: shown.append(obj))
    results.say(f"accuracy {f:.1f}%")
    (md,) = shown
    assert type(md).__name__ == "Markdown" and SPAN.findall(md.data) == [("acc", "value", "97.2")]
    with pytest.raises(ValueError, match="non-empty"):
        results.say("  ")


def test_record_returns_the_figure_a_float_that_a_cell_does_not_echo(monkeypatch, capsys):
    monkeypatch.delenv("WORKBOOK_RESULTS_FILE", raising=False)
    monkeypatch.setenv("WORKBOOK_STATIC", "1")
    f = results.record("copy rate", 1.5, "%", baseline=1.0)
    assert isinstance(f, results.Figure) and isinstance(f, float) and f is results.figure("copy rate")
    assert f == 1.5 and f + 1 == 2.5 and f > f.baseline and str(f) == "1.5" and f.unit == "%"
    assert SPAN.findall(f"{f:.1f}") == [("copy rate", "value", "1.5")]   # formatted: tagged
    from IPython.core.formatters import DisplayFormatter
    data, _ = DisplayFormatter().format(f)       # what a cell ending in record(...) shows
    assert data == {}
    data, _ = DisplayFormatter().format(1.5)
    assert data == {"text/plain": "1.5"}         # (a plain float would be echoed)
