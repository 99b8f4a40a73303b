"""Numbers from a .csv file for the command line, each complaint placed as an editor shows the file.

NumPy's ``loadtxt`` parses; this module decides which lines hold values and places every problem by line
and column, both counted from 1 with blank and '#' lines included (NumPy's own messages count rows of
values from 0 or from 1 depending on the error, and a whitespace-only line was "the number of columns
changed" with advice about an argument the command line does not have). A line whose text before any
'#' is whitespace is skipped, as an empty line is; '\\r\\n' and a lone '\\r' end a line, as '\\n' does.
The first line that holds entries may name the columns instead (pandas, R and spreadsheets write such a
header): when none of its entries reads as a number or is written like one (names, quoted or not, or
empty), it is skipped, unless
its first entry alone is empty (pandas' header over its index column: refused); for points, a first line of
exactly 0, 1, ..., d-1 (pandas' labels of unnamed columns, and as well a point) is refused.
Lines are numbered only to place a problem.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from covertreex.errors import InvalidInputError

LAYOUT = "comma-separated numbers, one row per point"
_BLANK = re.compile(r"^[^\S\n]+(?:#.*)?$", re.MULTILINE)
"""A line of whitespace, then perhaps a comment: NumPy reads it as a row of one empty entry. (Emptied in
place; a file without one is not copied.)"""
_BOM = b"\xef\xbb\xbf"
_CHUNK_LINES = 4096
"""Lines NumPy parses at once while looking for the first one it refuses (the file's own pace)."""


@dataclass(frozen=True)
class CsvNumbers:
    """A .csv file's values (float64, one row per line that holds values) and where each row stands."""

    values: np.ndarray
    content: str  # the text NumPy read: line ends as '\n', whitespace-only lines emptied

    def place(self, row: int, column: int) -> str:
        """Where the value at (row, column) of `values` is written in the file."""
        return f"line {self.lines[row]}, column {column + 1}"

    @cached_property
    def lines(self) -> list[int]:
        """The line number of each row of values, counted from 1."""
        return _value_lines(self.content.split("\n"))

    def tokens(self) -> np.ndarray:
        """The values as written (stripped), in the shape of `values`: for checks float64 cannot make."""
        return np.char.strip(_parse(self.content, dtype=str))

    def written(self, cells: np.ndarray) -> Iterator[tuple[int, int, str]]:
        """(row, column, the value as written) of each cell where the boolean array `cells` (the shape of
        `values`) is True, in row-major order; only the lines of those rows are read again."""
        at = np.argwhere(cells)
        if at.size == 0:
            return
        rows, line_of = np.unique(at[:, 0], return_inverse=True)
        lines = self.content.split("\n")
        text = np.char.strip(_parse("\n".join(lines[self.lines[row] - 1] for row in rows), dtype=str))
        for (row, column), line in zip(at, line_of, strict=True):
            yield int(row), int(column), str(text[line, column])


def read_csv(path: Path, what: str, *, points: bool = False) -> CsvNumbers:
    """The numbers in the .csv file `path` (`what` names them in errors), read once (a named pipe can be
    read only once). A file that is not UTF-8, holds an entry that is no number or rows of unequal length
    is refused in one line naming the first such line; one that holds no values too. `points`: the rows are
    points, so a first line of pandas' position labels is refused (:func:`_position_labels`; an ordering
    written as a row is 0, 1, ... itself)."""
    with open(path, "rb") as fh:  # what cannot be opened fails as open() says it, as a .npy does
        raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: cannot read {what} as {LAYOUT}: {_undecodable(raw, exc)}") from None
    content = _BLANK.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = content.split("\n")
    first = _first_entries(lines)
    labels = _position_labels(first) if points else None
    if labels is not None:
        raise InvalidInputError(
            f"{path}: cannot tell whether {labels} names the columns or is one of {what}: pandas writes "
            "0,1,... as the header of a frame made from an array (to_csv(index=False)); remove that line "
            "or start it with '#' if it is a header, or put a line naming the columns (say t, or x,y) before "
            "it if it is a point")
    if _index_header(first):
        raise InvalidInputError(
            f"{path}: cannot read {what} as {LAYOUT}: the first line names every column but the first, the "
            "header pandas writes over its index column, which to_csv(index=False) leaves out (read, the "
            "index would be a coordinate)")
    header = None
    if first is not None and _names_columns(first[1]):  # a header, emptied: the lines keep their numbers
        header = first
        lines[first[0]] = ""
        content = "\n".join(lines)
    try:
        values = _parse(content)
    except ValueError as exc:
        reason = _first_unreadable(content.split("\n"), str(exc))
        raise InvalidInputError(f"{path}: cannot read {what} as {LAYOUT}: {reason}") from None
    if values.size == 0:
        raise InvalidInputError(f"{path}: the file holds no rows of {what} (only blank or '#' lines)")
    numbers = CsvNumbers(values, content)
    if header is not None:
        _refuse_other_width(path, what, header, numbers)
    return numbers


def _refuse_other_width(path: Path, what: str, header: tuple[int, str], numbers: CsvNumbers) -> None:
    """A header must name as many columns as the rows hold: R's write.table (sep = ",") writes no name over
    its row names, which, with the header skipped, became a coordinate of every point (an outside trial);
    a header naming more columns than the rows hold misses a column just as silently."""
    named, held = len(_entries_of(header[1])), numbers.values.shape[1]
    if named == held:
        return
    why = ("R's write.table writes row names under a header that does not name them: row.names = FALSE "
           "leaves them out" if held == named + 1 else "a column is missing, or the header names too many")
    raise InvalidInputError(
        f"{path}: cannot read {what} as {LAYOUT}: the header (line {header[0] + 1}) names {named} "
        f"column{'s' * (named != 1)} but line {numbers.lines[0]} holds {_count(held)} ({why})")


def _first_entries(lines: list[str]) -> tuple[int, str] | None:
    """(its position in `lines`, the line) of the first line that holds entries, or None."""
    numbers = _value_lines(lines)
    return None if not numbers else (numbers[0] - 1, lines[numbers[0] - 1])


def _position_labels(first: tuple[int, str] | None) -> str | None:
    """'line N, "0,1,..."' when the first line of entries is exactly 0, 1, ..., d-1 written as integers
    (quoted or not): pandas' header for a frame of unnamed columns, and as much a point. Read as a point,
    it added a point that is not in the data (an outside trial: every ordering entry and row moved)."""
    if first is None:
        return None
    entries = [_unquoted(entry) for entry in _entries_of(first[1])]
    if entries != [str(position) for position in range(len(entries))]:
        return None
    return f"line {first[0] + 1}, {first[1].split('#', 1)[0].strip()!r},"


def _index_header(first: tuple[int, str] | None) -> bool:
    """Whether the first line of entries names every column but the first, which is empty and unquoted:
    pandas' header over its index (``to_csv()`` of a frame with named columns). Skipped as a header, the
    index became a coordinate of every point (a review)."""
    if first is None:
        return False
    entries = _entries_of(first[1])
    names = [_unquoted(entry) for entry in entries]
    # R's write.csv quotes its empty first name ('""') over row names, which are refused as quoted numbers
    return (len(names) > 1 and not entries[0].strip() and all(names[1:])
            and not any(map(_numbers, names[1:])))


def _names_columns(line: str) -> bool:
    """Whether a first line of entries names the columns: some entry is a name and none is a number
    (:func:`_numbers`) or, unquoted, written like one (:func:`_number_like`)."""
    entries = _entries_of(line)
    names = [_unquoted(entry) for entry in entries]
    return any(names) and not any(map(_numbers, names)) and not any(map(_number_like, entries))


_SIGN = "[-+\u2010-\u2015\u2212\ufe63\uff0b\uff0d]"
"""A sign as people and word processors write it: ASCII, hyphens and dashes (an en dash from autocorrect),
the minus sign, small and fullwidth forms."""

_NUMBER_LIKE = re.compile(
    rf"{_SIGN}?(?:\d[\d_.' ]*|\.\d[\d_]*|0x[\da-f_]+)(?:e{_SIGN}?\d+)?|{_SIGN}?(?:inf(?:inity)?|nan)",
    re.IGNORECASE)
"""A whole entry written like a number, read by NumPy or not: digits of any script (re's \\d), digit
separators, hexadecimal, an exponent, infinities and NaN, after any sign of :data:`_SIGN`."""


def _number_like(entry: str) -> bool:
    """Whether `entry`, unquoted, is written like a number: '1_000', '0x10', '\u22121.5', '\u20131' and
    '\uff11' name no column, and a first line of them skipped as a header lost a point without a word (an
    outside trial); '1st', '2019 sales' and '"2019"' do name one."""
    entry = entry.strip()
    return bool(entry) and entry[0] not in "'\"" and bool(_NUMBER_LIKE.fullmatch(entry))


def _numbers(name: str) -> bool:
    """Whether a would-be column name is a number, or numbers separated by ';', tabs or spaces (a row of
    values a spreadsheet wrote with another separator)."""
    parts = [part for part in re.split(r"[;\t ]+", name) if part]
    return bool(parts) and all(_reads(part, (1, 1)) for part in parts)


def _unquoted(entry: str) -> str:
    entry = entry.strip()
    quoted = len(entry) >= 2 and entry[0] == entry[-1] and entry[0] in "'\""
    return entry[1:-1] if quoted else entry


def _parse(text: str, dtype=float) -> np.ndarray:
    with warnings.catch_warnings():  # an empty file: refused by name where it is read, not warned about
        warnings.simplefilter("ignore", UserWarning)
        return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, comments="#", dtype=dtype)


def _value_lines(file_lines: list[str]) -> list[int]:
    """The numbers of the lines that hold values (neither empty nor a comment), counted from 1."""
    return [number for number, line in enumerate(file_lines, 1) if line and not line.startswith("#")]


def _undecodable(raw: bytes, exc: UnicodeDecodeError) -> str:
    """Where the first byte that is not UTF-8 stands (the decoder counts from after a byte-order mark)."""
    text_start = len(_BOM) if raw.startswith(_BOM) else 0
    offset = exc.start + text_start
    before = raw[:offset]
    line = before.replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1  # as the text's lines
    column = offset - max(before.rfind(b"\n") + 1, before.rfind(b"\r") + 1, text_start) + 1
    return (f"line {line}, byte {column} of it (0x{raw[offset]:02x}) is not UTF-8 text ({exc.reason}); save "
            "the file as UTF-8")


def _first_unreadable(file_lines: list[str], numpy_reason: str) -> str:
    """Why NumPy refuses the first line it refuses: it holds another number of entries than the first line
    that holds values, or an entry that is no number to NumPy's own parser (with a hint where that line is
    the first: a header without '#', or values separated otherwise than by commas). Chunks of lines are
    parsed first and single lines and entries only within the chunk that fails, so a long file costs about
    one more read. NumPy's reason if no single line is refused alone."""
    numbers = _value_lines(file_lines)
    width, first = len(_entries_of(file_lines[numbers[0] - 1])), numbers[0]
    for start in range(0, len(numbers), _CHUNK_LINES):
        chunk = numbers[start : start + _CHUNK_LINES]
        if _reads("\n".join(file_lines[n - 1] for n in chunk), (len(chunk), width)):
            continue
        for number in chunk:
            entries = _entries_of(file_lines[number - 1])
            if len(entries) != width:
                return f"line {number} holds {_count(len(entries))} where line {first} holds {width}"
            for column, entry in enumerate(entries, 1):
                if not _reads(entry, (1, 1)):
                    where = f"line {number}, column {column} is {entry.strip()!r}, not a number"
                    if _quoted_number(entry):  # R's write.csv, pandas' QUOTE_ALL: not a header
                        rows = (" (a first column of quoted numbers is R's row names: write.csv(..., "
                                "row.names = FALSE) leaves them out)" if column == 1 else "")
                        return where + "; numbers must be written without quotes" + rows
                    return where + _entry_hint(entry, column, number == first)
    return " ".join(numpy_reason.split())


def _entries_of(line: str) -> list[str]:
    return line.split("#", 1)[0].split(",")


def _quoted_number(entry: str) -> bool:
    return _unquoted(entry) != entry.strip() and _reads(_unquoted(entry), (1, 1))


def _entry_hint(entry: str, column: int, first_line: bool) -> str:
    """What an entry that is no number usually is: on the first line, values separated by ';', tabs or
    spaces (what a spreadsheet may write); on any line, a number written in a form NumPy does not read
    (:func:`_number_like`); on the first line, a header that names only some columns (one naming every
    column is skipped), or, with its first entry empty, pandas' header over its index column."""
    entry = entry.strip()
    if first_line and any(separator in entry for separator in ";\t "):
        return "; values must be separated by commas"
    if _number_like(entry):
        return ("; write numbers with the ASCII digits 0-9, '-', '.' and 'e' (no digit separators, "
                "hexadecimal or other minus signs)")
    if not first_line:
        return ""
    if entry:
        return "; a header line must name every column (or start with '#')"
    return ("; a first column without a name is pandas' index, which to_csv(index=False) leaves out"
            if column == 1 else "")


def _reads(text: str, shape: tuple[int, int]) -> bool:
    """Whether NumPy reads `text` as numbers of this shape (an empty entry reads as no number at all)."""
    try:
        return _parse(text).shape == shape
    except ValueError:
        return False


def _count(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"
