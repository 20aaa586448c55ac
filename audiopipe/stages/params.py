"""Declared stage parameters: one declaration validates, documents and resolves them.

Each stage lists its parameters once as :class:`Param` (name, type, default, allowed
values, bounds, doc). The same declaration

- validates ``datasets.yaml`` at load time and ``--set`` overrides before any work
  (:func:`check`), naming the key and the problem, e.g.
  ``datasets.demo.stages.segment.mdoe: unknown parameter (did you mean mode?)``;
- fills defaults, some of them from the dataset (its sample rate, its recipe's
  ``n_fft``/``hop_length``) and resolves paths against ``datasets.yaml``'s folder
  (:func:`resolve`);
- renders ``audiopipe stage NAME --help`` and the generated parameter tables of
  ``docs/stages.md`` (:func:`help_text`, :func:`markdown`).

This module imports nothing but the standard library: loading ``datasets.yaml`` must
stay quick.

Examples
--------
>>> P = (Param("mode", "str", "supervised", "how", choices=("supervised", "novelty")),
...      Param("n", "int", 3, "how many", low=1))
>>> check(P, {"mdoe": "novelty"}, where="datasets.demo.stages.segment")
['datasets.demo.stages.segment.mdoe: unknown parameter (did you mean mode?)']
>>> check(P, {"n": "0"}, where="s")
['s.n: must be >= 1, got 0']
>>> resolve(P, {"n": "5"})
{'mode': 'supervised', 'n': 5}
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "REQUIRED",
    "DATASET_DEFAULTS",
    "Param",
    "ParamError",
    "check",
    "resolve",
    "help_text",
    "markdown",
]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: the default of a parameter that must be given
REQUIRED: Any = _Required()

#: defaults a parameter may take from the dataset (``Param.from_dataset``)
DATASET_DEFAULTS = {
    "sample_rate": "the dataset's sample_rate",
    "n_fft": "the dataset recipe's n_fft",
    "hop_length": "the dataset recipe's hop_length",
}

_TYPES = ("str", "int", "float", "bool", "list", "floats", "path")
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


class ParamError(ValueError):
    """A parameter value that does not fit its declaration."""


@dataclass(frozen=True)
class Param:
    """One declared stage parameter.

    Parameters
    ----------
    name : str
        As written under ``stages.<stage>:`` in ``datasets.yaml`` and in ``--set``.
    type : {"str", "int", "float", "bool", "list", "floats", "path"}
        ``list`` is a list of strings, ``floats`` a list of numbers (both also accept a
        comma-separated string); ``path`` is a file path or URL, resolved against the
        folder of ``datasets.yaml`` when relative.
    default : Any
        :data:`REQUIRED` when the parameter must be given; ``None`` for "not set"
        (its doc says what happens then).
    doc : str
        One line for ``--help`` and the docs.
    choices : tuple
        Allowed values (empty: any).
    low, high : float, optional
        Inclusive bounds of a number (every number must also be finite: no NaN, no ±inf).
    low_open : bool
        ``low`` is exclusive (``> low``), e.g. a regularisation strength that must be > 0.
    min_len : int, optional
        Shortest allowed value: characters of a ``str``/``path``, items of a ``list``/
        ``floats``. Not set: a string may be empty, a list needs at least one item (an empty
        list is refused); set ``min_len=0`` on a list whose ``[]`` has a meaning.
    from_dataset : str, optional
        A key of :data:`DATASET_DEFAULTS`: when not given, the value comes from the
        dataset (``default`` is used only when the dataset does not say).
    """

    name: str
    type: str
    default: Any = None
    doc: str = ""
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    from_dataset: str | None = None
    low_open: bool = False
    min_len: int | None = None

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise TypeError(f"Param {self.name}: type must be one of {_TYPES}, got {self.type!r}")
        if self.from_dataset is not None and self.from_dataset not in DATASET_DEFAULTS:
            raise TypeError(f"Param {self.name}: unknown from_dataset {self.from_dataset!r}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def coerce(self, value: Any) -> Any:
        """The value converted to the declared type, or :class:`ParamError` saying why not."""
        if value is None:
            if self.required:
                raise ParamError("required parameter has no value")
            return None
        t = self.type
        if t in ("str", "path"):
            if isinstance(value, (dict, list, tuple)):
                raise ParamError(f"must be a {'path' if t == 'path' else 'string'}, got {value!r}")
            out: Any = str(value)
        elif t == "bool":
            if isinstance(value, bool):
                out = value
            elif str(value).strip().lower() in _TRUE:
                out = True
            elif str(value).strip().lower() in _FALSE:
                out = False
            else:
                raise ParamError(f"must be true or false, got {value!r}")
        elif t == "int":
            if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
                raise ParamError(f"must be an integer, got {value!r}")
            try:
                out = int(value)
            except (TypeError, ValueError):
                raise ParamError(f"must be an integer, got {value!r}") from None
        elif t == "float":
            if isinstance(value, bool):
                raise ParamError(f"must be a number, got {value!r}")
            try:
                out = float(value)
            except (TypeError, ValueError):
                raise ParamError(f"must be a number, got {value!r}") from None
            if not math.isfinite(out):
                raise ParamError(f"must be a finite number, got {out}")
        else:  # list / floats
            items = _items(value)
            if t == "list":
                out = [str(x) for x in items]
            else:
                try:
                    out = [float(x) for x in items]
                except (TypeError, ValueError):
                    raise ParamError(f"must be a list of numbers, got {value!r}") from None
                bad = [x for x in out if not math.isfinite(x)]
                if bad:
                    raise ParamError(f"must be a list of finite numbers, got {bad[0]}")
        if isinstance(out, (str, list)):
            n_min = self.min_len if self.min_len is not None else int(isinstance(out, list))
            if len(out) < n_min:
                what = "items" if isinstance(out, list) else "characters"
                raise ParamError(
                    f"must not be empty, got {out!r}" if n_min == 1
                    else f"needs at least {n_min} {what}, got {out!r}"
                )
        if self.choices:
            vals = out if isinstance(out, list) else [out]
            bad = [v for v in vals if v not in self.choices]
            if bad:
                raise ParamError(
                    f"must be one of {', '.join(map(str, self.choices))}, got {bad[0]!r}"
                )
        if self.low is not None or self.high is not None:
            vals = out if isinstance(out, list) else [out]
            for v in vals:
                if self.low is not None and (v <= self.low if self.low_open else v < self.low):
                    op = ">" if self.low_open else ">="
                    raise ParamError(f"must be {op} {_num(self.low)}, got {_num(v)}")
                if self.high is not None and v > self.high:
                    raise ParamError(f"must be <= {_num(self.high)}, got {_num(v)}")
        return out

    def default_text(self) -> str:
        """The default as shown in help and docs."""
        if self.required:
            return "required"
        base = "—" if self.default is None else _show(self.default)
        if self.from_dataset:
            return f"{DATASET_DEFAULTS[self.from_dataset]} (else {base})"
        return base

    def type_text(self) -> str:
        if self.choices:
            return " | ".join(map(str, self.choices)) + (" (list)" if self.type == "list" else "")
        return {"list": "list of str", "floats": "list of float"}.get(self.type, self.type)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _show(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(str, v)) + "]" if v else "[]"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def _items(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _by_name(params: Sequence[Param]) -> dict[str, Param]:
    return {p.name: p for p in params}


def check(
    params: Sequence[Param],
    raw: Mapping[str, Any] | None,
    *,
    where: str,
    require: bool = True,
) -> list[str]:
    """Problems of ``raw`` against the declaration, one ``where.key: reason`` line each.

    Unknown keys get a did-you-mean suggestion; ``require=False`` skips the check of
    required parameters (for a partial mapping such as ``--set`` alone).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return [f"{where}: must be a mapping of parameter: value, got {raw!r}"]
    decl = _by_name(params)
    problems = []
    for key, value in raw.items():
        p = decl.get(str(key))
        if p is None:
            near = difflib.get_close_matches(str(key), list(decl), n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]}?)" if near else (
                f" (known: {', '.join(decl)})" if decl else " (this stage takes no parameters)"
            )
            problems.append(f"{where}.{key}: unknown parameter{hint}")
            continue
        try:
            p.coerce(value)
        except ParamError as err:
            problems.append(f"{where}.{key}: {err}")
    if require:
        for p in params:
            if p.required and (raw.get(p.name) is None or (p.type == "path" and raw[p.name] == "")):
                problems.append(f"{where}.{p.name}: required parameter is missing")
    return problems


def resolve(
    params: Sequence[Param],
    raw: Mapping[str, Any] | None,
    *,
    dataset: Mapping[str, Any] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    where: str = "parameters",
) -> dict[str, Any]:
    """Every declared parameter with its value: given, else from the dataset, else default.

    Raises :class:`ParamError` with all problems (see :func:`check`). Relative ``path``
    values are made absolute against ``base_dir`` (URLs and absolute paths are kept).
    """
    raw = dict(raw or {})
    problems = check(params, raw, where=where)
    if problems:
        raise ParamError("\n".join(problems))
    out: dict[str, Any] = {}
    for p in params:
        if raw.get(p.name) is not None:
            v = p.coerce(raw[p.name])
        elif p.from_dataset and dataset and dataset.get(p.from_dataset) is not None:
            v = p.coerce(dataset[p.from_dataset])
        else:
            v = list(p.default) if isinstance(p.default, tuple) else p.default
        if p.type == "path" and v == "":
            v = None  # (left unset, as a call may pass it: not ``base_dir`` itself)
        if p.type == "path" and v is not None:
            v = resolve_path(v, base_dir)
        out[p.name] = v
    return out


def resolve_path(path: str, base_dir: str | os.PathLike[str] | None) -> str:
    """``path`` made absolute against ``base_dir`` (URLs and absolute paths unchanged)."""
    if "://" in path or os.path.isabs(path) or base_dir is None:
        return path
    return str((Path(base_dir) / path).resolve())


def help_text(params: Sequence[Param]) -> str:
    """Plain-text parameter list for ``audiopipe stage NAME --help``."""
    if not params:
        return "parameters: none"
    lines = ["parameters (datasets.yaml stages.NAME.KEY, or --set KEY=VALUE):"]
    for p in params:
        lines.append(f"  {p.name} ({p.type_text()}; default {p.default_text()})")
        if p.doc:
            lines.append(f"      {p.doc}")
    return "\n".join(lines)


def markdown(rows: Iterable[tuple[str, str, Sequence[Param]]]) -> str:
    """The generated parameter tables of ``docs/stages.md``: ``(name, summary, params)`` rows."""
    out = [
        "# Stage parameters",
        "",
        "<!-- generated from the stages' declarations by `python -m audiopipe.stages.docs`;"
        " do not edit (a test keeps it in sync) -->",
        "",
        "Set them under `stages: <stage>:` of a dataset in `datasets.yaml`, or for one run with",
        "`audiopipe stage NAME DATASET --set key=value`. Unknown keys and bad values are refused",
        "before any work (numbers must be finite; a list must not be empty unless its doc",
        "says what `[]` means). Paths are relative to the folder of `datasets.yaml`.",
        "",
    ]
    for name, summary, params in rows:
        out += [f"## `{name}`", "", summary, ""]
        if not params:
            out += ["No parameters.", ""]
            continue
        out += ["| parameter | type | default | what |", "| --- | --- | --- | --- |"]
        for p in params:
            doc = p.doc.replace("|", "\\|")
            typ = p.type_text().replace("|", "\\|")
            out.append(f"| `{p.name}` | {typ} | {p.default_text()} | {doc} |")
        out.append("")
    return "\n".join(out)
