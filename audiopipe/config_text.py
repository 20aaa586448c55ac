"""The words of ``datasets.yaml``'s checks: YAML read without silent surprises, and
pydantic's errors said plainly.

:func:`load_yaml` parses with PyYAML's safe loader and refuses a key declared twice in one
mapping (YAML itself keeps the last without a word), naming the key path and both lines.
:func:`format_errors` turns a pydantic ``ValidationError`` into ``key.path: reason`` lines
without pydantic's wording or internal names (a union's alternatives become one line).

Examples
--------
>>> load_yaml("storage: out\\nstorage: elsewhere\\n")
Traceback (most recent call last):
...
audiopipe.errors.ConfigError: <config>: storage: declared twice (lines 1 and 2); YAML would silently keep the last
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from audiopipe.errors import ConfigError

__all__ = ["format_errors", "load_yaml"]


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
