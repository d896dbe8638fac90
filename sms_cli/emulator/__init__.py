"""The local provider emulator (see server.py). One dialect module per provider API."""
from __future__ import annotations

from .server import Emulator, Options


def dialects():
    """The dialect classes, tried in order; adding a provider's dialect is one line here."""
    from .uspeedo import USpeedoDialect

    found = [USpeedoDialect]
    try:  # dialects added by the Tencent / Aliyun work
        from .tencent import TencentDialect
        found.insert(0, TencentDialect)
    except ImportError:
        pass
    try:
        from .aliyun import AliyunDialect
        found.insert(0, AliyunDialect)
    except ImportError:
        pass
    return found


__all__ = ["Emulator", "Options", "dialects"]
