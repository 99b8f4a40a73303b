"""Numbers from a .csv file for the command line, each complaint placed as an editor shows the file.

NumPy's ``loadtxt`` parses; this module decides which lines hold values and places every problem by line
and column, both counted from 1 with blank and '#' lines included (NumPy's own messages count rows of
values from 0 or from 1 depending on the error, and a whitespace-only line was "the number of columns
changed" with advice about an argument the command line does not have). A line whose text before any
'#' is blank or whitespace is skipped, as an empty line is.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covertreex.errors import InvalidInputError

LAYOUT = "comma-separated numbers, one row per point"


@dataclass(frozen=True)
class CsvNumbers:
    """A .csv file's values (float64, one row per line that holds values) and where each row stands."""

    values: np.ndarray
    content: str  # the text NumPy read (whitespace-only lines emptied)
    lines: tuple[int, ...]  # the line number of each row of values, counted from 1

    def place(self, row: int, column: int) -> str:
        """Where the value at (row, column) of `values` is written in the file."""
        return f"line {self.lines[row]}, column {column + 1}"

    def tokens(self) -> np.ndarray:
        """The values as written (stripped), in the shape of `values`: for checks float64 cannot make."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            text = np.loadtxt(io.StringIO(self.content), delimiter=",", ndmin=2, comments="#", dtype=str)
        return np.char.strip(text)


def read_csv(path: Path, what: str) -> CsvNumbers:
    """The numbers in the .csv file `path` (`what` names them in errors), read once (a named pipe can be
    read only once). A file that is not UTF-8, holds an entry that is no number or rows of unequal length
    is refused in one line naming the first such line; one that holds no values too."""
    with open(path, "rb") as fh:  # what cannot be opened fails as open() says it, as a .npy does
        raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: cannot read {what} as {LAYOUT}: byte {exc.start} is not UTF-8 "
                                f"text ({exc.reason})") from None
    file_lines = text.split("\n")
    holds_values = [bool(_before_comment(line).strip()) for line in file_lines]
    content = "\n".join(line if keep else "" for line, keep in zip(file_lines, holds_values, strict=True))
    lines = tuple(number for number, keep in enumerate(holds_values, 1) if keep)
    try:
        with warnings.catch_warnings():  # an empty file: refused by name below, not warned about
            warnings.simplefilter("ignore", UserWarning)
            values = np.loadtxt(io.StringIO(content), delimiter=",", ndmin=2, comments="#")
    except ValueError as exc:
        number, reason = _first_unreadable(file_lines, lines)
        reason = reason or " ".join(str(exc).split())
        header = "" if number not in (None, lines[0]) else "; a header line must start with '#'"
        raise InvalidInputError(f"{path}: cannot read {what} as {LAYOUT}: {reason}{header}") from None
    if values.size == 0:
        raise InvalidInputError(f"{path}: the file holds no rows of {what} (only blank or '#' lines)")
    return CsvNumbers(values, content, lines)


def _before_comment(line: str) -> str:
    return line.split("#", 1)[0]


def _first_unreadable(file_lines: list[str], lines: tuple[int, ...]) -> tuple[int | None, str | None]:
    """The first line whose number of entries differs from the first line's, or that holds an entry that
    is no number, and what is wrong with it ((None, None) where Python's float and NumPy's parser
    disagree: NumPy's message is kept then)."""
    width = first = None
    for number in lines:
        entries = _before_comment(file_lines[number - 1]).split(",")
        if width is None:
            width, first = len(entries), number
        elif len(entries) != width:
            return number, f"line {number} holds {_entries(len(entries))} where line {first} holds {width}"
        for column, entry in enumerate(entries, 1):
            try:
                float(entry)
            except ValueError:
                return number, f"line {number}, column {column} is {entry.strip()!r}, not a number"
    return None, None


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"
