"""Read and write lexicon files: long CSV, wide CSV, LIWC-22 ``.dicx`` and LIWC 2007/2015 ``.dic``.

Formats:

* ``long-csv`` — header ``Category,<term column>[,weight]``, one row per term × category
  (the paper's ``dict_big2_nouns.csv``: ``Category,token_decoded``);
* ``wide-csv`` — header ``<term column>,<category>...``, one row per term, cells ``X`` (member,
  weight 1), a number (member with that weight), or ``NA``/empty (not a member)
  (the paper's ``dict_big2_expanded.csv``);
* ``dicx`` — LIWC-22's export, the same table with ``DicTerm`` as the term column, read as
  utf-8-sig (a BOM is allowed);
* ``dic`` — LIWC 2007/2015: a ``%`` line, ``id<TAB>name`` category lines, a ``%`` line, then
  ``term<TAB>id id ...`` lines (a term may be a phrase; a trailing ``*`` is a wildcard).

Duplicates: a term listed twice (two rows of a wide table or ``.dic``, or the same term × category
twice in a long table) is an error by default, since it usually means a merge gone wrong.
``duplicates="merge"`` takes the union of the rows' categories instead — needed for released files
such as ``dict_big2_expanded.csv`` (36 repeated rows) and ``mfd2.0.dic`` (a word listed once per
foundation). A repeat that gives one category two different weights is an error either way.

Every problem raises :class:`~rmvalues.errors.LexiconError` naming file, line and fix; a malformed
file never yields a partial lexicon.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rmvalues.errors import LexiconError
from rmvalues.io import atomic_path, sha256_bytes
from rmvalues.lexicons.model import Lexicon, LexiconInfo

Format = Literal["long-csv", "wide-csv", "dicx", "dic"]
Duplicates = Literal["error", "merge"]
FORMATS: tuple[str, ...] = ("long-csv", "wide-csv", "dicx", "dic")
DUPLICATE_POLICIES: tuple[str, ...] = ("error", "merge")
_EXTENSIONS: dict[str, str] = {".dic": "dic", ".dicx": "dicx"}

_MEMBER = {"x"}
_ABSENT = {"", "na"}
_INTEGER = re.compile(r"\d+")


@dataclass
class _Builder:
    """Accumulates term → categories while parsing, applying the duplicate policy."""

    where: str
    duplicates: str
    entries: dict[str, dict[str, float]]
    first_line: dict[tuple[str, str | None], int]

    @classmethod
    def new(cls, where: str, duplicates: str) -> _Builder:
        if duplicates not in DUPLICATE_POLICIES:
            raise LexiconError(
                f"unknown duplicates policy {duplicates!r}; use one of {DUPLICATE_POLICIES}."
            )
        return cls(where, duplicates, {}, {})

    def add(self, term: str, cats: Mapping[str, float], line: int, *, per_category: bool) -> None:
        """Record ``term``'s categories from one line.

        ``per_category``: a duplicate is the same term × category (long tables), not the same term.
        """
        keys = [(term, c) for c in cats] if per_category else [(term, None)]
        for key in keys:
            if key in self.first_line and self.duplicates == "error":
                what = f"term {term!r}" + (f" in category {key[1]!r}" if key[1] else "")
                raise _error(
                    self.where,
                    line,
                    f"duplicate {what} (first on line {self.first_line[key]})",
                    "remove the repeat, or read with duplicates='merge' (CLI: --duplicates merge) "
                    "to take the union",
                )
            self.first_line.setdefault(key, line)
        have = self.entries.setdefault(term, {})
        for cat, weight in cats.items():
            if cat in have and have[cat] != weight:
                raise _error(
                    self.where,
                    line,
                    f"term {term!r} repeats category {cat!r} with weight {weight} "
                    f"(was {have[cat]})",
                    "keep one weight",
                )
            have[cat] = weight


def _error(where: str, line: int | None, problem: str, fix: str) -> LexiconError:
    at = f"{where}:{line}" if line is not None else where
    return LexiconError(f"{at}: {problem}; {fix}.")


def _check_term(where: str, line: int, term: str) -> str:
    term = term.strip()
    if not term:
        raise _error(where, line, "empty term", "fill in the term or delete the line")
    if term == "*":
        raise _error(where, line, "a bare '*' would match every word", "remove it")
    if any(ch in term for ch in "\t\r\n"):
        raise _error(where, line, f"term {term!r} contains a tab or line break", "remove it")
    return term


def decode(data: bytes, where: str, encoding: str = "utf-8-sig") -> str:
    """Decode a lexicon file; a UTF-8 BOM is dropped, text not valid in ``encoding`` is an error."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _error(
            where,
            line,
            f"not valid {encoding} (byte {data[exc.start:exc.start + 1]!r} at offset {exc.start})",
            "re-save the file as UTF-8, or pass its encoding (e.g. encoding='latin-1')",
        ) from None
    except LookupError:
        raise LexiconError(f"{where}: unknown encoding {encoding!r}.") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise _error(where, line, "contains NUL bytes (UTF-16 or a binary file?)",
                     "re-save the file as UTF-8 text")
    return text


# ---------------------------------------------------------------------------------------- CSV


def _csv_rows(text: str, where: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, cells)`` of each non-blank CSV record; quoting errors name their line."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                yield reader.line_num, cells
    except csv.Error as exc:
        raise _error(where, reader.line_num + 1, f"malformed CSV ({exc})",
                     "fix the quoting on that line") from None


def _categories_from_header(where: str, names: Iterable[str]) -> tuple[str, ...]:
    cats = tuple(n.strip() for n in names)
    if not cats:
        raise _error(where, 1, "header has no category columns",
                     "add a column per category after the term column")
    for i, cat in enumerate(cats):
        if not cat:
            raise _error(where, 1, f"header column {i + 2} has no category name", "name it")
        if cat in cats[:i]:
            raise _error(where, 1, f"category {cat!r} appears twice in the header", "rename one")
    return cats


def _cell_weight(where: str, line: int, cat: str, cell: str) -> float | None:
    value = cell.strip()
    if value.lower() in _ABSENT:
        return None
    if value.lower() in _MEMBER:
        return 1.0
    try:
        weight = float(value)
    except ValueError:
        weight = math.nan
    if not math.isfinite(weight):
        raise _error(where, line, f"bad cell {cell!r} in column {cat!r}",
                     "use X (member), a finite number (weight), or NA/empty (not a member)")
    return weight


def parse_wide_csv(text: str, *, where: str = "<text>", duplicates: Duplicates = "error"
                   ) -> tuple[tuple[str, ...], dict[str, dict[str, float]]]:
    """Categories and entries of a wide table (``wide-csv`` and ``dicx``)."""
    rows = _csv_rows(text, where)
    first = next(rows, None)
    if first is None:
        raise _error(where, None, "empty file", "a wide lexicon needs a header and term rows")
    header_line, header = first
    if header[0].strip().lower() == "category":
        raise _error(where, header_line, "header looks like a long table (Category,term)",
                     "read it as format='long-csv'")
    cats = _categories_from_header(where, header[1:])
    out = _Builder.new(where, duplicates)
    for line, cells in rows:
        if len(cells) != len(header):
            raise _error(where, line, f"{len(cells)} cells, header has {len(header)}",
                         "give every row one cell per header column")
        term = _check_term(where, line, cells[0])
        member = {}
        for cat, cell in zip(cats, cells[1:], strict=True):
            weight = _cell_weight(where, line, cat, cell)
            if weight is not None:
                member[cat] = weight
        if not member:
            raise _error(where, line, f"term {term!r} is in no category",
                         "mark at least one category with X or a weight, or delete the row")
        out.add(term, member, line, per_category=False)
    if not out.entries:
        raise _error(where, None, "no terms after the header", "add term rows")
    return cats, out.entries


def parse_dicx(text: str, *, where: str = "<text>", duplicates: Duplicates = "error"
               ) -> tuple[tuple[str, ...], dict[str, dict[str, float]]]:
    """A LIWC-22 ``.dicx``: a wide table whose first header cell must be ``DicTerm``."""
    first = next(_csv_rows(text, where), None)
    head = first[1][0].strip().lstrip("\ufeff") if first is not None else "DicTerm"
    if head.lower() != "category" and head != "DicTerm":  # a long table: the wide reader says so
        raise _error(where, first[0], f"header starts with {first[1][0]!r}, not DicTerm",
                     "a LIWC-22 .dicx starts with DicTerm,<category>,...; read any other wide "
                     "table with format='wide-csv' (or the .csv extension)")
    return parse_wide_csv(text, where=where, duplicates=duplicates)


def parse_long_csv(text: str, *, where: str = "<text>", duplicates: Duplicates = "error"
                   ) -> tuple[tuple[str, ...], dict[str, dict[str, float]]]:
    """Categories (in order of first appearance) and entries of a long table."""
    rows = _csv_rows(text, where)
    first = next(rows, None)
    if first is None:
        raise _error(where, None, "empty file", "a long lexicon needs a header and rows")
    header_line, header = first
    names = [h.strip().lower() for h in header]
    if names[0] != "category" or len(names) not in (2, 3) or (len(names) == 3
                                                              and names[2] != "weight"):
        raise _error(where, header_line, f"header {header!r} is not Category,<term>[,weight]",
                     "start the file with a header such as Category,token_decoded")
    weighted = len(names) == 3
    cats: dict[str, None] = {}
    out = _Builder.new(where, duplicates)
    for line, cells in rows:
        if len(cells) != len(header):
            raise _error(where, line, f"{len(cells)} cells, header has {len(header)}",
                         "give every row one cell per header column")
        cat = cells[0].strip()
        if not cat:
            raise _error(where, line, "empty category", "fill in the category")
        term = _check_term(where, line, cells[1])
        weight = 1.0
        if weighted:
            parsed = _cell_weight(where, line, "weight", cells[2])
            if parsed is None:
                raise _error(where, line, "missing weight", "give a number (or X for 1)")
            weight = parsed
        cats.setdefault(cat)
        out.add(term, {cat: weight}, line, per_category=True)
    if not out.entries:
        raise _error(where, None, "no rows after the header", "add Category,term rows")
    return tuple(cats), out.entries


# ---------------------------------------------------------------------------------------- .dic


def parse_dic(text: str, *, where: str = "<text>", duplicates: Duplicates = "error"
              ) -> tuple[tuple[str, ...], dict[str, dict[str, float]]]:
    """Categories (in id order of the header) and entries of a LIWC 2007/2015 ``.dic``."""
    lines = re.split(r"\r\n|\r|\n", text)
    numbered = [(i + 1, raw.strip()) for i, raw in enumerate(lines)]
    content = [(n, s) for n, s in numbered if s]
    if not content:
        raise _error(where, None, "empty file", "a .dic needs a % header and term lines")
    start, first = content[0]
    if first != "%":
        raise _error(where, start, f"missing '%' header (found {first[:40]!r})",
                     "start the file with a line holding only %, then 'id<TAB>name' lines, then %")
    ids: dict[str, str] = {}
    body_start = None
    for n, s in content[1:]:
        if s == "%":
            body_start = n
            break
        parts = s.split(None, 1)
        if len(parts) != 2 or not _INTEGER.fullmatch(parts[0]):
            raise _error(where, n, f"bad category line {s[:60]!r}",
                         "write category lines as 'id<TAB>name' with an integer id")
        cid, name = str(int(parts[0])), parts[1].strip()
        if cid in ids:
            raise _error(where, n, f"category id {parts[0]} defined twice", "give each a unique id")
        if name in ids.values():
            raise _error(where, n, f"category name {name!r} defined twice", "rename one")
        ids[cid] = name
    if body_start is None:
        raise _error(where, None, "header is not closed by a '%' line",
                     "add a line holding only % after the category lines")
    if not ids:
        raise _error(where, body_start, "no categories between the '%' lines",
                     "add 'id<TAB>name' lines")
    out = _Builder.new(where, duplicates)
    for n, raw in enumerate(lines[body_start:], start=body_start + 1):
        if not raw.strip():
            continue
        term, tokens = _split_dic_line(raw)
        term = _check_term(where, n, term)
        if not tokens:
            raise _error(where, n, f"term {term!r} has no category id",
                         "follow the term by a tab and one or more category ids")
        cats: dict[str, float] = {}
        for token in tokens:
            if not _INTEGER.fullmatch(token):
                raise _error(where, n, f"bad category id {token!r} for term {term!r}",
                             "use integer ids from the header (conditional syntax is unsupported)")
            cid = str(int(token))
            if cid not in ids:
                raise _error(where, n, f"unknown category id {token} for term {term!r}",
                             f"use one of the header's ids ({', '.join(ids)})")
            if ids[cid] in cats:
                raise _error(where, n, f"category id {token} repeated for term {term!r}",
                             "list each id once")
            cats[ids[cid]] = 1.0
        out.add(term, cats, n, per_category=False)
    if not out.entries:
        raise _error(where, None, "no terms after the header", "add 'term<TAB>id' lines")
    return tuple(ids.values()), out.entries


def _split_dic_line(raw: str) -> tuple[str, list[str]]:
    """Term and id tokens of one ``.dic`` line.

    A tab ends the term, so phrases (``do unto others<TAB>3``) keep their spaces. Without a tab the
    trailing run of integers are the ids and the words before them the term.
    """
    line = raw.strip()
    if "\t" in line:
        term, rest = line.split("\t", 1)
        return term, rest.split()
    tokens = line.split()
    k = len(tokens)
    while k > 1 and _INTEGER.fullmatch(tokens[k - 1]):
        k -= 1
    return " ".join(tokens[:k]), tokens[k:]


# ------------------------------------------------------------------------------------ dispatch

_PARSERS = {"long-csv": parse_long_csv, "wide-csv": parse_wide_csv, "dicx": parse_dicx,
            "dic": parse_dic}


def detect_format(path: str | Path, text: str | None = None) -> str:
    """Format from the extension (``.dic``, ``.dicx``), else from the content (``%`` → dic;
    a CSV header starting ``Category`` → long, any other → wide)."""
    suffix = Path(path).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if text is None:
        text = decode(Path(path).read_bytes(), str(path))
    first = next((s.strip() for s in text.splitlines() if s.strip()), "")
    if first == "%":
        return "dic"
    head = first.split(",", 1)[0].strip().strip('"').strip().lower()
    return "long-csv" if head == "category" else "wide-csv"


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise LexiconError(f"unknown lexicon format {fmt!r}; use one of {', '.join(FORMATS)}.")
    return fmt


def parse_lexicon(text: str, fmt: Format, *, info: LexiconInfo | None = None,
                  where: str = "<text>", duplicates: Duplicates = "error") -> Lexicon:
    """A :class:`Lexicon` from already-decoded text in format ``fmt``."""
    cats, entries = _PARSERS[_check_format(fmt)](text, where=where, duplicates=duplicates)
    try:
        return Lexicon(info or LexiconInfo(name=where), cats, entries)
    except LexiconError as exc:
        raise LexiconError(f"{where}: {exc}") from None


def read_lexicon(path: str | Path, *, fmt: Format | None = None, duplicates: Duplicates = "error",
                 encoding: str = "utf-8-sig", info: LexiconInfo | None = None) -> Lexicon:
    """Read a lexicon file; the format is detected unless given.

    ``info`` defaults to the file's stem as name, its path as source and its sha256.
    """
    path = Path(path)
    where = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LexiconError(f"{where}: no such lexicon file; check the path.") from None
    except IsADirectoryError:
        raise LexiconError(f"{where}: is a directory, not a lexicon file.") from None
    text = decode(data, where, encoding)
    fmt = _check_format(fmt) if fmt else detect_format(path, text)
    info = info or LexiconInfo(name=path.stem, source=where, sha256=sha256_bytes(data))
    return parse_lexicon(text, fmt, info=info, where=where, duplicates=duplicates)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------- writers


def _weight_cell(weight: float, member: str) -> str:
    return member if weight == 1.0 else repr(float(weight))


def format_lexicon(lexicon: Lexicon, fmt: Format) -> str:
    """The file text of ``lexicon`` in format ``fmt`` (readable back by :func:`parse_lexicon`)."""
    fmt = _check_format(fmt)  # type: ignore[assignment]
    buf = io.StringIO(newline="")
    if fmt == "dic":
        if lexicon.is_weighted():
            raise LexiconError(
                f"lexicon {lexicon.name!r} has weights, which a .dic cannot hold; "
                "write it as dicx, wide-csv or long-csv."
            )
        ids = {cat: i + 1 for i, cat in enumerate(lexicon.categories)}
        buf.write("%\n")
        for cat, i in ids.items():
            buf.write(f"{i}\t{cat}\n")
        buf.write("%\n")
        for term, cats in lexicon.entries.items():
            buf.write(term + "\t" + "\t".join(str(ids[c]) for c in cats) + "\n")
        return buf.getvalue()
    writer = csv.writer(buf, lineterminator="\n")
    if fmt == "long-csv":
        weighted = lexicon.is_weighted()
        writer.writerow(["Category", "token_decoded"] + (["weight"] if weighted else []))
        for term, cats in lexicon.entries.items():
            for cat, weight in cats.items():
                writer.writerow([cat, term] + ([repr(weight)] if weighted else []))
        return buf.getvalue()
    absent = "NA" if fmt == "wide-csv" else ""
    writer.writerow(["DicTerm", *lexicon.categories])
    for term, cats in lexicon.entries.items():
        writer.writerow([term] + [_weight_cell(cats[c], "X") if c in cats else absent
                                  for c in lexicon.categories])
    return buf.getvalue()


def write_lexicon(lexicon: Lexicon, path: str | Path, fmt: Format | None = None) -> Path:
    """Write ``lexicon`` atomically; the format defaults from the extension (``.csv`` → wide)."""
    path = Path(path)
    if fmt is None:
        fmt = _EXTENSIONS.get(path.suffix.lower(), "wide-csv")  # type: ignore[assignment]
    text = format_lexicon(lexicon, fmt)  # type: ignore[arg-type]
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return path
