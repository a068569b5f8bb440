"""Recording a notebook's headline figures, and the comparison tables it shows
(introduced in chapter 1).

A notebook calls :func:`record` for every number that says how well a model
worked, with its baseline where there is one. When ``WORKBOOK_RESULTS_FILE`` is
set (``make bench`` sets it, one file per notebook) the figure is appended to
that file as one JSON line, with the device. The bench script then prints a
table of every chapter's figures and times and writes ``_build/results.json``.

A comparison of several methods is shown with :func:`table`: ONE rendered table
(HTML in the book and in Jupyter, plain text in a terminal) with the units in
the header, "—" for a missing value and the best value of each column in bold.
Its ``record=`` argument records figures *from the table's own cells*, so a
printed number and a recorded one cannot differ. Reference rows (a floor, an oracle,
real data) are shown in italics and never marked best: they are yardsticks, not
competitors.

A sentence that states a recorded figure takes it from the record: :func:`figure`
returns the figure recorded under a name, which formats itself as the number tagged
with that name (``<span class="workbook-number" data-record=...>``), and :func:`say`
shows the sentence as Markdown::

    psnr = results.figure("SR PSNR, SRResNet")
    results.say(f"SRResNet gains {psnr.gain:+.2f} dB over {psnr.baseline:.2f} dB.")

The book's browser test reads every tagged number on every page and compares it with
the figure in that execution's records, so a sentence cannot state another number.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
from typing import Any, Mapping, Sequence

from IPython import get_ipython
from IPython.display import display

from . import runtime

MISSING = "—"


KINDS = ("claim", "reference")
# A table row whose label contains one of these marks, or starts with one of these
# prefixes (real data, the ground truth), is a reference row (see Table).
REFERENCE_MARKS = ("(floor)", "(reference)", "(oracle)")
REFERENCE_PREFIXES = ("real ", "ground truth", "original")


def is_reference_row(label: str) -> bool:
    """Whether a table row is a yardstick by its label: a floor, a reference, an oracle,
    real data or the ground truth (``REFERENCE_MARKS``, ``REFERENCE_PREFIXES``)."""
    return any(m in label for m in REFERENCE_MARKS) or label.lower().startswith(REFERENCE_PREFIXES)


def record(name: str, value: float, unit: str = "", *, baseline: float | None = None,
           baseline_name: str | None = None, higher_is_better: bool | None = None,
           kind: str = "claim") -> "Figure":
    """Record one figure (one JSON line in ``WORKBOOK_RESULTS_FILE`` if that is set).

    ``name``: what was measured ("test accuracy"); ``unit``: "%", "bits/dim", ...
    ``baseline``/``baseline_name``: the number a learned method is compared with.
    ``kind``: ``"claim"`` (the default: the method is meant to beat its baseline, and
    ``make bench`` fails when it does not) or ``"reference"`` (a row that is a lesson or a
    yardstick, not a win: a memoriser, an over-fitted K, a known limitation, a paper's number).
    Returns the :class:`Figure` (also kept for :func:`figure`): a float that, formatted
    into a sentence, is tagged with its name; a cell ending in ``record(...)`` shows nothing.
    It is echoed as one line of text, except in the static book build
    (``runtime.static()``), where the page's own table or prose shows the number and
    the figure goes into the page as an invisible ``span.workbook-figure`` (its JSON in
    ``data-figure``), which the browser test compares with the results appendix.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty string")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: value must be finite, got {value}")
    if kind not in KINDS:
        raise ValueError(f"{name}: kind must be one of {KINDS}, got {kind!r}")
    rec = {"name": name, "value": value, "unit": unit, "device": str(runtime.device()),
           "profile": runtime.profile(), "kind": kind}
    if baseline is not None:
        rec["baseline"] = float(baseline)
        rec["baseline_name"] = baseline_name or "baseline"
    if higher_is_better is not None:
        rec["higher_is_better"] = bool(higher_is_better)
    if runtime.static():
        if get_ipython() is not None:
            # Invisible in the page; lets the book's test compare the appendix with the page.
            data = html.escape(json.dumps({k: rec[k] for k in ("name", "value", "unit")}))
            display({"text/html": f'<span class="workbook-figure" hidden data-figure="{data}"></span>'},
                    raw=True)
    else:
        text = f"{name}: {value:.4g} {unit}".rstrip()
        if baseline is not None:
            text += f"   ({rec['baseline_name']}: {float(baseline):.4g} {unit})".rstrip()
        print(text)
    fig = _FIGURES[name] = Figure(rec)
    path = os.environ.get("WORKBOOK_RESULTS_FILE")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
    return fig


_record = record  # table() has a keyword of the same name


# --- comparison tables ------------------------------------------------------------------------

def _number(v: Any) -> float | None:
    """The float of a numeric cell (None for missing/nan/text)."""
    if v is None or isinstance(v, (str, bool)):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"a table cell must be a number, a string or None, got {type(v).__name__}") from None
    return f if math.isfinite(f) else None


class Table:
    """A comparison table: ``rows`` (label -> cells) against ``columns``.

    Build it with :func:`table` (which also displays and records); the object renders
    itself as HTML (``_repr_html_``: the book, Jupyter), Markdown (``_repr_markdown_``)
    and plain text (``str``: a terminal). ``cells`` holds the values as given (floats
    untouched), ``text`` the strings shown, ``bold`` which cells are marked best.
    ``reference_rows``: rows that are yardsticks (a floor, an oracle, real data), shown in
    italics and never marked best; by default the rows :func:`is_reference_row` finds
    ("... (floor)", "... (oracle)", "real ...", "ground truth", ...). ``numeric``: which
    columns hold numbers (right-aligned; text columns are left-aligned).
    """

    def __init__(self, rows: Mapping[str, Mapping[str, Any] | Sequence[Any]], columns: Sequence[str], *,
                 title: str, units: Mapping[str, str] | None = None,
                 higher_is_better: bool | Mapping[str, bool] | None = None, winner: str | None = None,
                 formats: str | Mapping[str, str] = ".4g", label: str = "method",
                 reference_rows: Sequence[str] | None = None):
        if not isinstance(title, str) or not title:
            raise ValueError("a table needs a non-empty title")
        if isinstance(columns, str) or not columns or not all(isinstance(c, str) and c for c in columns):
            raise ValueError(f"columns must be a non-empty sequence of names, got {columns!r}")
        if len(set(columns)) != len(columns):
            raise ValueError(f"column names must be unique, got {list(columns)}")
        if not isinstance(rows, Mapping) or not rows:
            raise TypeError("rows must be a non-empty dict: row label -> {column: value} (or a tuple of values)")
        self.title, self.columns, self.label = title, list(columns), label
        self.units = dict(units or {})
        if isinstance(higher_is_better, bool) or higher_is_better is None:
            self.direction = {c: higher_is_better for c in self.columns}
        else:
            self.direction = {c: higher_is_better.get(c) for c in self.columns}
        unknown = (set(self.units) | (set(higher_is_better) if isinstance(higher_is_better, Mapping) else set())
                   | (set(formats) if isinstance(formats, Mapping) else set())) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown columns {sorted(unknown)}; the table has {self.columns}")
        self.cells: dict[str, dict[str, Any]] = {}
        for name, row in rows.items():
            if isinstance(row, Mapping):
                extra = set(row) - set(self.columns)
                if extra:
                    raise ValueError(f"row {name!r} has unknown columns {sorted(extra)}; the table has {self.columns}")
                self.cells[str(name)] = {c: row.get(c) for c in self.columns}
            else:
                row = list(row)
                if len(row) != len(self.columns):
                    raise ValueError(f"row {name!r} has {len(row)} values for {len(self.columns)} columns")
                self.cells[str(name)] = dict(zip(self.columns, row))
        if winner is not None and winner not in self.cells:
            raise ValueError(f"winner {winner!r} is not a row; rows are {list(self.cells)}")
        self.winner = winner
        if reference_rows is None:
            reference_rows = [r for r in self.cells if is_reference_row(r)]
        elif isinstance(reference_rows, str) or set(reference_rows) - set(self.cells):
            raise ValueError(f"reference_rows must be row labels, got {reference_rows!r}; "
                             f"rows are {list(self.cells)}")
        if winner is not None and winner in reference_rows:
            raise ValueError(f"the winner {winner!r} cannot be a reference row")
        self.references = [r for r in self.cells if r in set(reference_rows)]
        # a column is numeric (right-aligned) when it holds a number; text columns are left-aligned
        self.numeric = {c: any(not isinstance(row[c], str) and _number(row[c]) is not None
                               for row in self.cells.values()) for c in self.columns}
        fmt = {c: formats.get(c, ".4g") if isinstance(formats, Mapping) else formats for c in self.columns}
        self.text = {r: {c: self._show(v, fmt[c]) for c, v in row.items()} for r, row in self.cells.items()}
        self.bold = {r: {c: False for c in self.columns} for r in self.cells}
        for c in self.columns:
            nums = {r: _number(row[c]) for r, row in self.cells.items() if r not in self.references}
            nums = {r: v for r, v in nums.items() if v is not None}
            if self.direction[c] is None or len(nums) < 2:
                continue
            best = max(nums.values()) if self.direction[c] else min(nums.values())
            for r, v in nums.items():
                self.bold[r][c] = v == best

    @staticmethod
    def _show(v: Any, fmt: str) -> str:
        if isinstance(v, str):
            return v
        num = _number(v)
        return MISSING if num is None else format(num, fmt)

    def header(self, c: str) -> str:
        """The column's header: its name, its unit in parentheses, an arrow for its direction."""
        unit = f" ({self.units[c]})" if self.units.get(c) else ""
        arrow = {True: " ↑", False: " ↓", None: ""}[self.direction[c]]
        return f"{c}{unit}{arrow}"

    def value(self, row: str, column: str) -> float:
        """The number in one cell, exactly as given (raises if it is missing or text)."""
        if row not in self.cells:
            raise ValueError(f"unknown row {row!r}; rows are {list(self.cells)}")
        if column not in self.columns:
            raise ValueError(f"unknown column {column!r}; columns are {self.columns}")
        num = _number(self.cells[row][column])
        if num is None:
            raise ValueError(f"cell ({row!r}, {column!r}) holds no number: {self.cells[row][column]!r}")
        return float(self.cells[row][column])

    def _align(self, c: str) -> str:
        return "right" if self.numeric[c] else "left"

    def _repr_html_(self) -> str:
        e = html.escape
        head = "".join(f'<th style="text-align: {self._align(c)}">{e(self.header(c))}</th>'
                       for c in self.columns)
        body = []
        for r in self.cells:
            name = (f"<strong>{e(r)}</strong>" if r == self.winner
                    else f"<em>{e(r)}</em>" if r in self.references else e(r))
            tds = "".join(
                f'<td style="text-align: {self._align(c)}">'
                f'{"<strong>%s</strong>" % e(t) if self.bold[r][c] else e(t)}</td>'
                for c, t in self.text[r].items())
            cls = ' class="workbook-reference"' if r in self.references else ""
            body.append(f'<tr{cls}><th style="text-align: left">{name}</th>{tds}</tr>')
        return (f'<table class="workbook-results table">\n<caption>{e(self.title)}</caption>\n'
                f'<thead><tr><th style="text-align: left">{e(self.label)}</th>{head}</tr></thead>\n'
                f"<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>")

    def _repr_markdown_(self) -> str:
        def md(t):
            return t.replace("|", "\\|")
        lines = [f"**{md(self.title)}**", "",
                 "| " + " | ".join([md(self.label)] + [md(self.header(c)) for c in self.columns]) + " |",
                 "| :--- |" + "".join(" ---: |" if self.numeric[c] else " :--- |" for c in self.columns)]
        for r in self.cells:
            name = f"**{md(r)}**" if r == self.winner else f"*{md(r)}*" if r in self.references else md(r)
            cells = [f"**{md(t)}**" if self.bold[r][c] else md(t) for c, t in self.text[r].items()]
            lines.append("| " + " | ".join([name] + cells) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        grid = [[self.label] + [self.header(c) for c in self.columns]]
        for r in self.cells:
            name = f"{r} *" if r == self.winner else r
            grid.append([name] + [f"{t}*" if self.bold[r][c] else t for c, t in self.text[r].items()])
        widths = [max(len(row[j]) for row in grid) for j in range(len(grid[0]))]
        lines = [self.title]
        for i, row in enumerate(grid):
            lines.append("  ".join([row[0].ljust(widths[0])] + [
                t.rjust(w) if self.numeric[c] else t.ljust(w) for t, w, c in zip(row[1:], widths[1:], self.columns)
            ]).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        if any(any(b.values()) for b in self.bold.values()) or self.winner:
            lines.append("(* best in its column" + (", or the winning row" if self.winner else "") + ")")
        return "\n".join(lines)

    __repr__ = __str__


def table(rows: Mapping[str, Mapping[str, Any] | Sequence[Any]], columns: Sequence[str], *, title: str,
          record: Mapping[str, Sequence[str]] | None = None, units: Mapping[str, str] | None = None,
          higher_is_better: bool | Mapping[str, bool] | None = None, winner: str | None = None,
          formats: str | Mapping[str, str] = ".4g", label: str = "method",
          references: Sequence[str] = (), reference_rows: Sequence[str] | None = None) -> None:
    """Display a comparison as one table and record the figures taken from its cells.

    ``rows``: row label -> ``{column: value}`` (or a tuple in the order of ``columns``);
    a value is a number, a string (shown as is) or ``None``/``nan`` (shown as "—").
    ``units``: column -> unit, shown in the header ("PSNR (dB)").
    ``higher_is_better``: one bool for every column, or column -> bool; the best value
    of each such column is bold. ``winner``: a row label to set in bold.
    ``formats``: a format spec (``".4g"``) for every column, or column -> spec.
    ``record``: figure name -> ``(row, column)``, ``(row, column, baseline_row)`` or
    ``(row, column, baseline_row, baseline_name)``; each is passed to :func:`record`
    with the column's unit and direction, its values read from the table's cells
    (``baseline_name`` defaults to the baseline row's label). ``references``: names among
    ``record``'s that are recorded as references (``kind="reference"``), not claims.
    ``reference_rows``: rows that are yardsticks, never marked best (see :class:`Table`).
    Returns nothing (a cell ending in ``table(...)`` shows the table once); build a
    :class:`Table` to inspect the cells.

    >>> table({"bicubic": {"PSNR": 24.1}, "SRResNet": {"PSNR": 25.3}}, ["PSNR"],
    ...       title="x4 super-resolution", units={"PSNR": "dB"}, higher_is_better=True,
    ...       record={"SR PSNR, SRResNet": ("SRResNet", "PSNR", "bicubic")})  # doctest: +SKIP
    """
    t = Table(rows, columns, title=title, units=units, higher_is_better=higher_is_better, winner=winner,
              formats=formats, label=label, reference_rows=reference_rows)
    picks = []
    unknown = set(references) - set(record or {})
    if isinstance(references, str) or unknown:
        raise ValueError(f"references must name figures of record=, got {sorted(unknown) or references!r}")
    for name, spec in (record or {}).items():
        if isinstance(spec, str) or not 2 <= len(spec) <= 4:
            raise ValueError(f"record[{name!r}] must be (row, column[, baseline_row[, baseline_name]]), got {spec!r}")
        row, column, base_row, base_name = (*spec, None, None)[:4]
        value = t.value(row, column)
        baseline = None if base_row is None else t.value(base_row, column)
        picks.append((name, value, column, baseline, base_name or base_row))
    _display(t)
    for name, value, column, baseline, base_name in picks:
        _record(name, value, t.units.get(column, ""), baseline=baseline,
                            baseline_name=base_name if baseline is not None else None,
                            higher_is_better=t.direction[column],
                            kind="reference" if name in references else "claim")


def _display(obj) -> None:
    """IPython's display in a kernel (HTML in the book), the plain-text table elsewhere."""
    if get_ipython() is None:
        print(obj)
    else:
        display(obj)


# --- numbers in sentences ---------------------------------------------------------------------

_FIGURES: dict[str, "Figure"] = {}   # name -> the figure recorded last under it in this process
_SPEC = re.compile(r"[+\- ]?,?(\.\d+)?[fge]?")
_TAG = re.compile(r'<span class="workbook-number"[^>]*>([^<]*)</span>')
MINUS = "\u2212"


class Number(float):
    """One recorded number (a figure's value, its baseline, their difference or ratio): a
    float that, formatted into a sentence, is tagged with its record: ``f"{n:.2f}"`` gives
    ``<span class="workbook-number" data-record="NAME" data-field="FIELD">1.23</span>``
    (``str(n)`` and arithmetic are those of the plain number). Format specs: fixed,
    general or exponent (``.2f``, ``+.1f``, ``,.0f``, ``.3g``, ``.1e``; default ``.4g``);
    no ``%``, because the book's test reads the number shown and compares it with the
    record. A cell that ends in a call returning one shows nothing (the page's table or
    sentence shows the number)."""

    FIELDS = ("value", "baseline", "gain", "ratio")

    def __new__(cls, name: str, field: str, number: float):
        if field not in cls.FIELDS:
            raise ValueError(f"field must be one of {cls.FIELDS}, got {field!r}")
        self = super().__new__(cls, float(number))
        self.name, self.field, self.number = name, field, float(number)
        return self

    def _ipython_display_(self) -> None:
        pass

    def __format__(self, spec: str) -> str:
        if not _SPEC.fullmatch(spec):
            raise ValueError(f"{self.name}: format spec {spec!r} is not fixed, general or exponent "
                             "(e.g. '.2f', '+.1f', '.3g')")
        text = format(self.number, spec or ".4g").replace("-", MINUS)
        return (f'<span class="workbook-number" data-record="{html.escape(self.name, quote=True)}" '
                f'data-field="{self.field}">{text}</span>')

    def __str__(self) -> str:
        return float.__repr__(self.number)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.field!r}, {self.number!r})"


class Figure(Number):
    """A recorded figure (:func:`record`, or a table's ``record=``): formats as its value;
    ``.baseline``, ``.gain`` (value - baseline) and ``.ratio`` (value / baseline) are the
    other numbers a sentence states about it; ``.value`` and ``.unit`` as recorded."""

    def __new__(cls, rec: Mapping[str, Any]):
        self = super().__new__(cls, rec["name"], "value", rec["value"])
        self.value, self.unit = self.number, rec.get("unit", "")
        self._baseline = rec.get("baseline")
        return self

    def _need_baseline(self) -> float:
        if self._baseline is None:
            raise ValueError(f"figure {self.name!r} was recorded without a baseline")
        return float(self._baseline)

    @property
    def baseline(self) -> Number:
        return Number(self.name, "baseline", self._need_baseline())

    @property
    def gain(self) -> Number:
        return Number(self.name, "gain", self.value - self._need_baseline())

    @property
    def ratio(self) -> Number:
        return Number(self.name, "ratio", self.value / self._need_baseline())


def figure(name: str) -> Figure:
    """The figure recorded under ``name`` in this kernel (by :func:`record` or a table's
    ``record=``), to be formatted into a sentence shown by :func:`say`."""
    if name not in _FIGURES:
        raise ValueError(f"no figure recorded under {name!r}; recorded: {sorted(_FIGURES)}")
    return _FIGURES[name]


def say(text: str) -> None:
    """Show a sentence (Markdown) that states recorded figures formatted from :func:`figure`:
    in a kernel as Markdown (the tags go into the page), elsewhere as plain text."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("say needs a non-empty sentence")
    if get_ipython() is None:
        print(_TAG.sub(lambda m: m.group(1).replace(MINUS, "-"), text))
    else:
        from IPython.display import Markdown

        display(Markdown(text))
