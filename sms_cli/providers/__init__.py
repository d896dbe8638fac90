"""Provider registry: adding a provider is one module and one line here."""
from __future__ import annotations

from importlib import import_module

# type name -> "module:Class", imported on first use so start-up stays fast
PROVIDERS: dict[str, str] = {
    "uspeedo": "sms_cli.providers.uspeedo:USpeedo",
    "tencent": "sms_cli.providers.tencent:Tencent",
    "aliyun": "sms_cli.providers.aliyun:Aliyun",
    "outbox": "sms_cli.providers.outbox:Outbox",
}


def provider_class(type_name: str | None):
    target = PROVIDERS.get(str(type_name)) if type_name else None
    if target is None:
        return None
    module, _, cls = target.partition(":")
    return getattr(import_module(module), cls)


def make_provider(settings, templates=None, *, concurrency: int = 4, transport=None):
    cls = provider_class(settings.type)
    if transport is not None:  # a scripted wire (providers/http.py); the outbox has no wire
        return cls(settings, templates, concurrency=concurrency, transport=transport)
    return cls(settings, templates, concurrency=concurrency)
