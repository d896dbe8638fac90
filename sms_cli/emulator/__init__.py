"""The local provider emulator (see server.py). One dialect module per provider API.

Imported lazily: `sms-cli send` registers the emulator's command but must not pay for loading
the emulator (and the adapters its dialects verify against) on every start."""
from __future__ import annotations


def dialects():
    """The dialect classes, tried in order; adding a provider's dialect is one line here.
    Tencent comes before Aliyun: both answer at "/" with form bodies, and only Tencent's
    requests carry X-TC-Action or SecretId."""
    from .aliyun import AliyunDialect
    from .tencent import TencentDialect
    from .uspeedo import USpeedoDialect

    return [TencentDialect, AliyunDialect, USpeedoDialect]


def __getattr__(name: str):
    if name in ("Emulator", "Options"):
        from . import server

        return getattr(server, name)
    raise AttributeError(name)


__all__ = ["Emulator", "Options", "dialects"]
