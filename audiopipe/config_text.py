"""The words of ``datasets.yaml``'s checks: YAML read without silent surprises, pydantic's
errors said plainly, and the values written as text that are read by others later.

:func:`load_yaml` parses with PyYAML's safe loader and refuses a key declared twice in one
mapping (YAML itself keeps the last without a word), naming the key path and both lines.
:func:`format_errors` turns a pydantic ``ValidationError`` into ``key.path: reason`` lines
without pydantic's wording or internal names (a union's alternatives become one line).
:func:`cron_problem` and :func:`memory_problem` check a ``schedule:`` and a
``cluster.memory_limit`` as Prefect and Dask will read them, without importing either (a
deployment or a worker failed late; ``validate`` must stay quick); :func:`name_problem` keeps
a dataset's name a folder name inside the storage, :func:`storage_problems` the storage root
one that Delta Lake can hold.

Examples
--------
>>> load_yaml("storage: out\\nstorage: elsewhere\\n")
Traceback (most recent call last):
...
audiopipe.errors.ConfigError: <config>: storage: declared twice (lines 1 and 2); YAML would silently keep the last
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from audiopipe.errors import ConfigError
from audiopipe.uri import root_problem

__all__ = ["cron_problem", "demo_folder", "format_errors", "load_yaml", "memory_problem",
           "memory_size", "name_problem", "path_problem", "path_problems", "storage_problems"]


#: what each strict-mode type error of pydantic means, in plain words
_TYPE_WORDS = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be text",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping (key: value lines)",
    "model_type": "must be a mapping (key: value lines)",
    "model_attributes_type": "must be a mapping (key: value lines)",
}
#: one message for a key of a type with alternatives (pydantic reports each, or a part)
_UNION_WORDS = {
    "channels": "must be mix, first or a channel index (an integer >= 0)",
    "labels": "must be a mapping with path (and optionally on, root)",
    "source": "must be a path, glob or URL, or a list of them",
}
#: the parts of pydantic's error locations that name a validator or a union's alternative
_LOC_TAGS = ("function-after", "function-before", "function-wrap", "function-plain", "int",
             "str", "float", "bool", "none", "nullable", "list", "dict", "is-instance")


def _is_tag(part: Any) -> bool:
    return isinstance(part, str) and (
        part in _LOC_TAGS or "[" in part or (part[:1].isupper() and part.endswith("Config"))
    )


def _shown(v: Any) -> str:
    if v is True or v is False:
        return "true" if v else "false"
    if v is None:
        return "null (empty)"
    return repr(v)


def _plain(e: Any) -> str:
    """One pydantic error in plain words (no pydantic wording, no internal names)."""
    kind, ctx, msg = e["type"], e.get("ctx") or {}, e["msg"]
    got = f", got {_shown(e['input'])}" if "input" in e and not isinstance(
        e["input"], dict | list) else ""
    if kind == "extra_forbidden":
        return "unknown key (check the spelling)"
    if kind == "missing":
        return "required key is missing"
    if kind in ("value_error", "assertion_error"):
        for prefix in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(prefix)
        return msg
    key = str(e["loc"][-1]) if e["loc"] else ""
    if kind in _TYPE_WORDS:
        return _UNION_WORDS.get(key, _TYPE_WORDS[kind]) + got
    if kind == "literal_error":
        return f"must be {ctx.get('expected', '')}".replace("'", "") + got
    for k, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if k in ctx:
            bound = f"{ctx[k]:g}" if isinstance(ctx[k], int | float) else ctx[k]
            return f"must be {op} {bound}{got}"
    return msg.replace("Input should be", "must be") + got


def format_errors(err: ValidationError) -> list[str]:
    """Pydantic's errors as ``key.path: reason`` lines (a union's alternatives as one line)."""
    by_loc: dict[str, list[Any]] = {}
    for e in err.errors():
        parts = e["loc"]  # (a dataset's name, second after "datasets", is the user's word)
        loc = ".".join(str(p) for i, p in enumerate(parts)
                       if not _is_tag(p) or (i == 1 and parts[0] == "datasets"))
        by_loc.setdefault(loc, []).append(e)
    lines = []
    for loc, errs in by_loc.items():
        if len(errs) > 1 and len({str(x["loc"]) for x in errs}) > 1:  # a union's alternatives
            key = loc.rsplit(".", 1)[-1]
            why = _UNION_WORDS.get(key) or " or ".join(
                dict.fromkeys(_plain({**x, "input": None}).removesuffix(", got null (empty)")
                              for x in errs))
            errs = [{**errs[0], "type": "value_error", "msg": why + (
                f", got {_shown(errs[0]['input'])}" if "input" in errs[0] else "")}]
        for e in errs:
            for line in _plain(e).split("\n"):
                sub, sep, rest = line.partition(": ")
                # a model's own check naming one of its keys: "min_sample_rate: ..."
                if sep and sub.isidentifier() and e["type"] == "value_error" and " " not in sub:
                    lines.append(f"{loc}.{sub}: {rest}" if loc else line)
                else:
                    lines.append(f"{loc}: {line}" if loc else line)
    return lines


class _Loader(yaml.SafeLoader):
    """The safe loader; :func:`load_yaml` checks its node tree for duplicate keys first."""


def _duplicates(node: yaml.Node, path: str = "") -> list[str]:
    """``key.path: declared twice (lines a and b)`` for each key repeated in one mapping."""
    out: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            where = f"{path}.{key}" if path else str(key)
            if key is not None and key != "<<":
                line = k.start_mark.line + 1
                if key in seen:
                    out.append(f"{where}: declared twice (lines {seen[key]} and {line}); "
                               "YAML would silently keep the last")
                else:
                    seen[key] = line
            out += _duplicates(v, where)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out += _duplicates(v, f"{path}[{i}]")
    return out


def load_yaml(text: str, name: str = "<config>") -> Any:
    """Parse YAML safely; a key repeated in one mapping is a :class:`ConfigError`.

    Examples
    --------
    >>> load_yaml("datasets:\\n  a: {source: x}\\n  a: {source: y}\\n")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    audiopipe.errors.ConfigError: <config>: datasets.a: declared twice (lines 2 and 3); ...
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        dups = _duplicates(node)
        if dups:
            raise ConfigError("\n".join(f"{name}: {d}" for d in dups))
        return loader.construct_document(node)
    finally:
        loader.dispose()


#: a cron field: its name, lowest and highest value, and the names it accepts (croniter's
#: fields: five, then optional seconds, then an optional year)
_CRON_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {"l": "l"}),
    ("month", 1, 12, {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul",
                                                   "aug", "sep", "oct", "nov", "dec"), 1)}),
    ("day of week", 0, 6, {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri",
                                                       "sat"))}),
    ("second", 0, 59, {}),
    ("year", 1970, 2099, {}),
)
_CRON_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_CRON_SHAPE = "minute hour day-of-month month day-of-week"
_DAYS, _MONTHS = "|".join(_CRON_FIELDS[4][3]), "|".join(_CRON_FIELDS[3][3])
#: croniter's patterns: a day of week's ``day#n`` or ``Ln``; a range ``a-b[/step]``; R and H
_NTH_DAY = re.compile(rf"^(?P<pre>((?P<he>(({_DAYS})(-({_DAYS}))?)|(({_MONTHS})(-({_MONTHS}))?)"
                      r"|\w+)#)|l)(?P<last>\d+)$")
_RANGE = re.compile(r"^([^-]+)-([^-/]+)(/(\d+))?$")
_RANDOM = re.compile(r"^[hr](\(\d+-\d+\))?(/\d+)?$")


def _cron_number(v: int, field: int, n_fields: int) -> int:
    """croniter's aliases: day of week 7 is Sunday (five fields), day of month 0 is 1 (six)."""
    if field == 4 and v == 7 and n_fields == 5:
        return 0
    return 1 if field == 2 and v == 0 and n_fields == 6 else v


def _cron_field(
    text: str, field: int, n_fields: int, nth: set[Any]
) -> tuple[str | None, set[Any]]:
    """Why one field is wrong (or None), and its values; ``nth`` collects the days of week
    given as ``day#n`` or ``Ln``. Item by item as croniter reads them: a range is expanded
    and each of its values read again (``0-5`` in the day of month fails at 0)."""
    name, lo, hi, words = _CRON_FIELDS[field]
    if _RANDOM.match(text):
        return f"{text!r}: random (R) and hashed (H) values are not supported", set()
    if "?" in text:
        if text != "?" or field not in (2, 4):
            return f"{text!r}: ? may only stand alone, in the day of month or day of week", set()
        text = "*"
    values: set[Any] = set()
    todo: list[Any] = text.split(",")
    while todo:
        e = str(todo.pop())
        week = None
        m = _NTH_DAY.match(e) if field == 4 else None
        if m and m["he"]:
            if not 1 <= int(m["last"]) <= 5:
                return f"{e!r}: the week number after # must be 1-5", values
            e, week = m["he"], m["last"]
        elif m:
            e, week = m["last"], "l"
        t = re.sub(r"^\*(/.+)$", rf"{lo}-{hi}\1", e)
        r = _RANGE.search(t) or _RANGE.search(t := re.sub(r"^(.+)/(.+)$", rf"\1-{hi}/\2", e))
        if r:
            step, ends = int(r[4] or 1), []
            for band in (r[1], "31" if field == 2 and r[2] == "l" else r[2]):
                v = band if re.match(r"^\d+$", band) else words.get(band)
                if not isinstance(v, int | str) or not str(v).isdigit():
                    return f"{band!r} in {e!r} is not a {name}", values
                ends.append(_cron_number(int(v), field, n_fields))
            a, b = ends
            if max(a, b) > hi:
                return f"{name} {max(a, b)} is not in {lo}-{hi}", values
            if step == 0:
                return f"step 0 of {e!r} is not a whole number > 0", values
            if a > b:  # wrapping round (sat-mon), the step carried over the end
                span = list(range(lo, hi + 1))
                rng = list(range(a, hi + 1, step))
                skip = 0
                if rng and span.index(rng[-1]) + step > len(span) and span[::-1].index(
                        rng[-1]) < step:
                    skip = step - span[::-1].index(rng[-1])
                rng += list(range(lo + skip, b + 1, step))
            else:  # (a == b: the whole cycle)
                rng = list(range(lo, hi + 1, step) if a == b else range(a, b + 1, step))
            todo += [f"{x}#{week}" if week and week != "l" else x for x in rng]
            continue
        if t.startswith("-"):
            return f"{t!r}: negative numbers are not allowed", values
        v = t if re.match(r"^(\d+|\*)$", t) else words.get(t)
        if v is None:
            return f"{t!r} is not a {name}", values
        if v not in ("*", "l"):
            v = _cron_number(int(v), field, n_fields)
            if not lo <= v <= hi:
                return f"{name} {v} is not in {lo}-{hi}", values
        values.add(v)
        if week:
            nth.add(v)
    return None, values


def cron_problem(expr: str) -> str | None:
    """Why ``expr`` is not a cron schedule Prefect accepts, or None.

    Read as Prefect's croniter reads it: five fields (``minute hour day-of-month month
    day-of-week``), then optional seconds and year, of ``*``, numbers in range, month and day
    names, ranges (wrapping: ``fri-mon``), lists, ``/steps``, ``?`` (day fields), ``L`` and
    ``1-L`` (day of month), ``day#n`` and ``Ln`` (day of week, not mixed with plain days); or
    an alias such as ``@daily``. Random and hashed values (``R``, ``H``) are refused.

    Examples
    --------
    >>> cron_problem("*/15 9-17 * * mon-fri") is None
    True
    >>> cron_problem("61 * * * *")
    "must be a cron expression (minute hour day-of-month month day-of-week): minute 61 is not in 0-59, got '61 * * * *'"
    """
    efl = expr.lower()
    if efl in _CRON_ALIASES:
        return None
    fields = efl.split()
    why, nth, days = None, set(), set()
    if len(fields) not in (5, 6, 7):
        why = f"{len(fields)} fields instead of 5"
    for i, f in enumerate(fields if why is None else ()):
        why, values = _cron_field(f, i, len(fields), nth)
        if why:
            break
        days = values if i == 4 else days
    if why is None and nth and (days - nth - {"*"}) and len(days) != 7:
        why = ("a day of week given as day#n or Ln cannot be listed with plain days "
               f"({fields[4]!r})")
    return None if why is None else f"must be a cron expression ({_CRON_SHAPE}): {why}, got {expr!r}"


#: dask.utils.parse_bytes's units (case-insensitive): decimal and binary prefixes
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "p": 10**15, "pb": 10**15, "ki": 2**10,
          "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30, "ti": 2**40,
          "tib": 2**40, "pi": 2**50, "pib": 2**50}
_SIZE = re.compile(r"^((?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?)([a-z]*)$")
#: the smallest absolute limit: a Dask worker process alone needs about this much
MIN_MEMORY = 128 * 2**20


def memory_size(text: str) -> int | None:
    """Bytes of a size such as ``4GiB`` or ``500 MB`` as Dask reads it, or None if it is not one.

    Examples
    --------
    >>> memory_size("4GiB"), memory_size("1.5 GB"), memory_size("lots")
    (4294967296, 1500000000, None)
    """
    m = _SIZE.match(text.replace(" ", "").lower())
    if m is None or m.group(2) not in _UNITS:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def memory_problem(text: str) -> str | None:
    """Why ``text`` is not a worker memory limit Dask accepts, or None.

    A size (``4GiB``, ``500MB``, at least 128 MiB), ``auto`` (the machine's memory shared by
    the workers), a fraction of the machine's memory (``0.5``), or ``0`` (no limit).
    """
    usage = ("must be a size like 4GiB or 500MB, auto, a fraction of the machine's memory "
             f"such as 0.5, or 0 for no limit, got {text!r}")
    if text.strip() == "auto":
        return None
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and math.isfinite(number) and 0 <= number <= 1:
        return None  # a fraction (0: no limit)
    size = memory_size(text)
    if size is None or (number is not None and not math.isfinite(number)):
        return usage
    if size < MIN_MEMORY:
        return f"must be at least 128 MiB (a Dask worker needs more to start), got {text!r}"
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a dataset's folder under the storage root, or None."""
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name:
        return ("a dataset name must be a plain folder name (not empty, not . or .., no / or \\), "
                f"got {name!r}")
    return None


def storage_problems(storage: Any, base_dir: str, names: Iterable[str] = ()) -> list[str]:
    """Problems of the storage root (``storage``, resolved against the config's folder, and
    ``AUDIOPIPE_STORAGE``, which overrides it) and of the datasets' folders in it (``names``):
    a path Delta Lake cannot hold (:func:`audiopipe.uri.root_problem`), refused before any work.

    Examples
    --------
    >>> storage_problems("s3://bucket/out%2Fx", ".")[0].split(",")[0]
    "storage: the storage root 's3://bucket/out%2Fx' contains '%2F'"
    >>> storage_problems("/data/out", ".", ["take[2]"])[0].split(",")[0]
    "datasets.take[2]: the dataset's folder '/data/out/take[2]' contains '['"
    """
    roots = [("storage", storage), ("AUDIOPIPE_STORAGE (environment)",
                                    os.environ.get("AUDIOPIPE_STORAGE"))]
    problems = []
    for key, root in roots:
        if not isinstance(root, str) or not root:
            continue
        if "://" not in root:  # (as Config.storage_root and Location resolve it)
            root = str((Path(base_dir) / root).resolve()) if key == "storage" else os.path.abspath(root)
        why = root_problem(root)
        if why:
            problems.append(f"{key}: the storage root {root!r} {why}")
            continue
        for name in names:
            folder = f"{root.rstrip('/')}/{name}"
            why = None if name_problem(name) else root_problem(folder)
            if why:
                problems.append(f"datasets.{name}: the dataset's folder {folder!r} {why}")
    return problems


def path_problem(
    value: Any, base_dir: str, *, file_only: bool, written_under: str | None = None
) -> str | None:
    """Why a local path of the config (relative to its folder) names nothing to read, or None.

    URLs and values that are not text are not checked here; nor a path inside
    ``written_under``, a folder whose files are written before they are read (a demo corpus).
    ``file_only``: a folder will not do (a labels table).
    """
    if not isinstance(value, str) or "://" in value:
        return None
    if not value.strip():
        return "must not be empty (leave the key out to not set it)"
    path = value if os.path.isabs(value) else str((Path(base_dir) / value).resolve())
    if written_under and (path + os.sep).startswith(written_under + os.sep):
        return None
    if file_only and os.path.isdir(path):
        return f"a folder, not a labels file (CSV or Parquet): {path}"
    if not os.path.exists(path):
        return f"no such file{'' if file_only else ' or folder'}: {path}"
    return None


def demo_folder(source: Any, demo_corpus: Any, base_dir: str) -> str | None:
    """The folder a demo corpus not yet written will fill (its files are not missing): a
    dataset's first ``source`` when ``demo_corpus`` is true and it holds no ``.wav`` yet."""
    first = source[0] if isinstance(source, list) and source else source
    if demo_corpus is not True or not isinstance(first, str) or not first.strip():
        return None
    folder = str((Path(base_dir) / first.split("*")[0].rstrip("/")).resolve())
    return None if next(Path(folder).rglob("*.wav"), None) else folder


def path_problems(
    dataset: str,
    keys: Iterable[tuple[str, Any, bool]],
    base_dir: str,
    written_under: str | None = None,
) -> list[str]:
    """``datasets.D.key: reason`` (:func:`path_problem`) for each ``(key, value, file_only)``
    of ``keys`` that names no local file or folder to read."""
    return [f"datasets.{dataset}.{key}: {why}" for key, v, file_only in keys
            if (why := path_problem(v, base_dir, file_only=file_only, written_under=written_under))]
