"""Changing a few keys of one table in a TOML file the user may have edited (stdlib only).

The user's config file says "edit freely": comments, other tables and keys r2r-local does not
manage must survive `r2r models add`. `edit_table` changes only the lines of the keys it sets or
drops and checks its result by parsing it; where the file's shape defeats that (a multi-line
value, a dotted or inline `models` table) `dumps` writes the whole document, which keeps every
value but not the comments, so the caller keeps a backup.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from typing import Any, Iterable

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_HEADER = re.compile(r"\s*\[")


def edit_table(text: str, table: str, values: dict[str, Any], drop: Iterable[str] = ()) -> tuple[str, bool] | None:
    """`text` with `[table]`'s keys in `values` set (str or int values) and those in `drop`
    removed, other lines untouched; plus whether nothing but those keys' old values was lost
    (False when a changed or dropped line held a comment). None when the result would not parse
    to exactly the intended document (the caller then rewrites the whole file).

    New keys go after the table's last line that is not blank or a comment: blank lines and
    comments just above the next table's header belong to that table."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    want = dict(doc)
    want[table] = {k: v for k, v in (doc.get(table) or {}).items() if k not in set(drop)} | values
    lines = text.splitlines(keepends=True)
    header = re.compile(rf"\s*\[\s*{re.escape(table)}\s*\]\s*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line.rstrip("\r\n"))), None)
    lossless = True
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines += ["\n" if lines else "", f"[{table}]\n"] + [f"{k} = {_value(v)}\n" for k, v in values.items()]
    else:
        end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
        todo = dict(values)
        for i in range(start + 1, end):
            key = _line_key(lines[i])
            if key in todo or key in set(drop):
                lossless &= "#" not in lines[i]  # a dropped value is the caller's to report
                lines[i] = f"{key} = {_value(todo.pop(key))}\n" if key in todo else ""
        last = max((i for i in range(start, end) if lines[i].strip() and not lines[i].lstrip().startswith("#")),
                   default=start)
        lines[last + 1:last + 1] = [f"{k} = {_value(v)}\n" for k, v in todo.items()]
        if not lines[last].endswith("\n"):
            lines[last] += "\n"
    new = "".join(lines)
    try:
        if tomllib.loads(new) != want:
            return None
    except tomllib.TOMLDecodeError:
        return None
    return new, lossless


def _line_key(line: str) -> str | None:
    key, eq, _ = line.partition("=")
    key = key.strip().strip('"')
    return key if eq and _BARE_KEY.fullmatch(key) else None


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if v == v and abs(v) != float("inf") else {"nan": "nan", "inf": "inf", "-inf": "-inf"}[str(v)]
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON's escapes are TOML basic-string escapes
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def dumps(doc: dict[str, Any], comment: str = "") -> str:
    """A TOML document that parses back to `doc` (comments of an earlier file are not kept)."""
    lines = [f"# {comment}"] if comment else []

    def emit(prefix: list[str], table: dict[str, Any]) -> None:
        plain = [(k, v) for k, v in table.items() if not isinstance(v, dict)]
        subs = [(k, v) for k, v in table.items() if isinstance(v, dict)]
        if prefix and (plain or not subs):
            lines.append(f"[{'.'.join(prefix)}]")
        lines.extend(f"{_key(k)} = {_value(v)}" for k, v in plain)
        for k, v in subs:
            emit([*prefix, _key(k)], v)

    emit([], doc)
    return "\n".join(lines) + "\n"
