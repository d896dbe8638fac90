"""The local provider emulator (see server.py). One dialect module per provider API."""
from __future__ import annotations

from .aliyun import AliyunDialect
from .server import Emulator, Options
from .tencent import TencentDialect
from .uspeedo import USpeedoDialect


def dialects():
    """The dialect classes, tried in order; adding a provider's dialect is one line here.
    Tencent comes before Aliyun: both answer at "/" with form bodies, and only Tencent's
    requests carry X-TC-Action or SecretId."""
    return [TencentDialect, AliyunDialect, USpeedoDialect]


__all__ = ["Emulator", "Options", "dialects"]
