"""`FileUnreadable`: the one error for "this file as a whole cannot be ingested".

A bad value in a row is never this error — it is a rejected row. This is raised when nothing sensible can
be read: a missing required column, a broken compression stream, a syntax error in a JSON array or XML
document (which cannot be resumed past), a DOCTYPE with entity declarations, invalid UTF-8. The message
always names the file, and the row/field when they are known, so a log line is enough to find the problem.
"""

from __future__ import annotations


class FileUnreadable(Exception):
    """The file cannot be read as a whole (see the module docstring for when)."""

    def __init__(self, file: str, message: str, *, row: int | None = None, field: str | None = None) -> None:
        self.file, self.message, self.row, self.field = file, message, row, field
        where = ", ".join(
            part
            for part in (f"row {row}" if row is not None else "", f"field {field}" if field else "")
            if part
        )
        super().__init__(f"{file}: {where + ': ' if where else ''}{message}")
