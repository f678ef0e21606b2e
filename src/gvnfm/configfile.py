"""Configuration files as the reference reads them, checked before any setting is used.

- Java ``.properties`` (the VNFM's ``application.properties``): read by ``javaproperties`` exactly as
  ``java.util.Properties.load`` reads them (``\\`` escapes, line continuations, ``:``/``=``/blank
  separators, ``\\uXXXX``; the last of duplicated keys wins).
- Spring placeholders ``${name}`` / ``${name:default}`` in a value are resolved the way Spring resolves
  them for a property the program uses: the environment first (``name``, then its upper-case
  ``_`` form, ``rabbitmq.host`` -> ``RABBITMQ_HOST``), then the other keys of the file, then the
  default after ``:``. A placeholder that resolves to nothing is an error naming the key and the
  placeholder; a value is never used with a literal ``${...}`` in it. Placeholders of keys gvnfm does
  not use are left alone (Spring resolves them lazily too).
- Keys are sorted three ways by :func:`classify_keys`: used, known to the reference but ignored by gvnfm
  (one warning naming them all), unknown (an error that suggests the closest known key).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

SECRET_WORDS = ("password", "secret", "token", "passwd")
MAX_PLACEHOLDER_DEPTH = 32


class ConfigFileError(ValueError):
    """A configuration file that cannot be used as it is (unreadable, unknown key, unresolvable ${...})."""


def read_java_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    """Key -> raw value of a Java properties file, decoded as ``Properties.load(InputStream)`` decodes
    it (ISO-8859-1; other characters as ``\\uXXXX`` escapes)."""
    import javaproperties  # here, not at the top: the EMS imports this module and never reads Java files

    try:
        with open(path, "rb") as fh:
            return dict(javaproperties.load(fh))
    except OSError as exc:
        raise ConfigFileError(f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:  # javaproperties.InvalidUEscapeError is a ValueError
        raise ConfigFileError(f"{os.fspath(path)}: {exc}") from exc


def env_names(name: str) -> list[str]:
    """The environment variables Spring consults for a property name, in order."""
    under = name.replace(".", "_").replace("-", "_")
    out = [name, under, under.upper()]
    return list(dict.fromkeys(out))


def resolve_value(key: str, values: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """``values[key]`` with every ``${...}`` resolved (environment, then the other keys, then the
    default after ``:``); :class:`ConfigFileError` when one cannot be."""

    def lookup(name: str, depth: int, chain: tuple[str, ...]) -> str | None:
        for env in env_names(name):
            if env in environ:
                return environ[env]
        if name in values:
            if name in chain:
                raise ConfigFileError(f"{key}: placeholders loop through {' -> '.join((*chain, name))}")
            return expand(values[name], depth + 1, (*chain, name))
        return None

    def expand(text: str, depth: int, chain: tuple[str, ...]) -> str:
        if depth > MAX_PLACEHOLDER_DEPTH:
            raise ConfigFileError(f"{key}: placeholders nested deeper than {MAX_PLACEHOLDER_DEPTH}")
        out: list[str] = []
        i = 0
        while True:
            start = text.find("${", i)
            if start < 0:
                out.append(text[i:])
                return "".join(out)
            out.append(text[i:start])
            end, level, j = -1, 0, start + 2
            colon = -1
            while j < len(text):
                if text.startswith("${", j):
                    level += 1
                    j += 2
                    continue
                if text[j] == "}":
                    if level == 0:
                        end = j
                        break
                    level -= 1
                elif text[j] == ":" and level == 0 and colon < 0:
                    colon = j
                j += 1
            if end < 0:
                raise ConfigFileError(f"{key}: unterminated placeholder in {text!r} (a '${{' without '}}')")
            name_part = text[start + 2:colon if colon >= 0 else end]
            name = expand(name_part, depth + 1, chain).strip()
            found = lookup(name, depth, chain)
            if found is None and colon >= 0:
                found = expand(text[colon + 1:end], depth + 1, chain)
            if found is None:
                tried = ", ".join(env_names(name)[1:])
                raise ConfigFileError(
                    f"{key}: placeholder ${{{name}}} is not set (no environment variable {tried}, no key {name} "
                    f"in the file, no default: write ${{{name}:value}} or set {env_names(name)[-1]})")
            out.append(found)
            i = end + 1

    return expand(values[key], 0, (key,))


def suggest(key: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known key, or ``""``."""
    close = difflib.get_close_matches(key, sorted(set(known)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def classify_keys(keys: Iterable[str], is_used: Callable[[str], bool], ignored: Callable[[str], bool],
                  known: Iterable[str], source: str) -> list[str]:
    """The keys the reference knows that gvnfm ignores (for one warning); raises
    :class:`ConfigFileError` listing every unknown key with a suggestion."""
    unknown, skipped = [], []
    for k in keys:
        if is_used(k):
            continue
        if ignored(k):
            skipped.append(k)
        else:
            unknown.append(k)
    if unknown:
        known = list(known)
        lines = "; ".join(f"unknown key {k!r}{suggest(k, known)}" for k in sorted(unknown))
        raise ConfigFileError(f"{source}: {lines}")
    return sorted(skipped)


def is_secret(name: str) -> bool:
    low = name.lower()
    return any(w in low for w in SECRET_WORDS)


def mask_value(name: str, value: object) -> object:
    """A setting's value for display: secrets as ``***``, URLs without their password."""
    if value is None or value == "":
        return value
    if is_secret(name):
        return "***"
    if isinstance(value, str) and "://" in value:
        from gvnfm.transport.amqp import safe_url

        return safe_url(value)
    if isinstance(value, Path):
        return str(value)
    return value


def render_settings(values: Mapping[str, object], sources: Mapping[str, str] | None = None) -> str:
    """``name = value  # source`` lines, secrets masked (what ``--check-config`` prints)."""
    width = max((len(k) for k in values), default=0)
    lines = []
    for name in sorted(values):
        shown = mask_value(name, values[name])
        origin = (sources or {}).get(name)
        lines.append(f"{name.ljust(width)} = {shown!s}" + (f"  # {origin}" if origin else ""))
    return "\n".join(lines)
