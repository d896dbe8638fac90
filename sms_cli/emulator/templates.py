"""`--templates FILE`: the templates the emulator knows, so it refuses an unknown template id or
a wrong number of parameters with each API's own code, as the providers do.

The file is YAML: `templates: {ID: {params: [names] or N, text: "..."}}` (an sms-cli config
file works as it is; only its `templates:` section is read), or that mapping alone.
"""
from __future__ import annotations

from pathlib import Path

from ..core.settings import Template
from ..config.load import _load_yaml
from ..core.errors import ConfigError, SmsCliError


def load_templates(path: str) -> dict[str, Template]:
    where = f"--templates {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SmsCliError(f"{where}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:  # the config's loader: no aliases (an alias bomb), bounded nesting, strings kept
        raw = _load_yaml(text, Path(path))
    except ConfigError as exc:
        raise SmsCliError(f"--templates {exc}") from None
    section = raw.get("templates") if isinstance(raw, dict) and "templates" in raw else raw
    if not isinstance(section, dict) or not section:
        raise SmsCliError(f"{where}: expected `templates:` with a mapping of template ids "
                          "(ID: {params: [names] or a count, text: ...})")
    return {str(tid): _template(str(tid), entry, f"{where}: templates.{tid}") for tid, entry in section.items()}


def _template(tid: str, entry, where: str) -> Template:
    if entry is None:
        return Template(tid)  # known id, parameters not checked
    if not isinstance(entry, dict):
        raise SmsCliError(f"{where}: expected a mapping with params and/or text")
    unknown = sorted(str(k) for k in entry if k not in ("params", "text"))
    if unknown:
        raise SmsCliError(f"{where}: unknown key {unknown[0]!r} (allowed: params, text)")
    params, names, count = entry.get("params"), None, None
    if isinstance(params, list):
        names = tuple(str(p) for p in params)
        count = len(names)
    elif isinstance(params, int) and not isinstance(params, bool) and params >= 0:
        count = params
    elif isinstance(params, str) and params.isdigit():
        count = int(params)
    elif params is not None:
        raise SmsCliError(f"{where}.params: expected a list of names or a count, got {params!r}")
    text = entry.get("text")
    return Template(tid, names, count, None if text is None else str(text))
