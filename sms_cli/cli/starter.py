"""`sms-cli config init`: where a user's config lives by default, and a commented starter
config per provider type, written from the provider classes' own keys.

Secrets are never written: every credential key the provider reads from a conventional
environment variable is a `${VAR}` reference to it. The account keys are placeholders that
cannot pass for real values (YOUR-SENDER-ID, account 00000): `config check` fails, naming them, until
they are edited and the variables are set.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import SmsCliError
from ..providers import provider_class

STARTER_TYPES = ("uspeedo", "tencent", "aliyun")

# a value and a comment for each key a starter shows (keys the provider class lists in
# config_keys; credential keys with an environment variable become ${VAR} instead). Values in
# PLACEHOLDERS are the user's to fill in: a config still holding one fails `config check`.
_KEY_NOTES: dict[str, dict[str, tuple[str, str]]] = {
    "uspeedo": {
        "account_id": ('"00000"', "AccountId (project id) from the uSpeedo console (a number)"),
        "sender_id": ("YOUR-SENDER-ID", "for rows without a sender_id (or remove this line)"),
        "auth": ("signature", "signature (X-Signature headers) or basic"),
        "action": ("SendBatchUSMSMessage", "or SendUSMSMessage (the same content to many numbers)"),
    },
    "tencent": {
        "region": ("ap-singapore", "ap-singapore or eu-frankfurt"),
        "sms_sdk_app_id": ("YOUR-SDK-APP-ID", "SmsSdkAppId from the Tencent Cloud SMS console"),
        "sender_id": ("YOUR-SENDER-ID", "for rows without a sender_id (or remove this line)"),
    },
    "aliyun": {
        "sign_name": ("YOUR-SIGN-NAME", "the approved signature, for rows without a sender_id"),
        "signature": ("rpc", "rpc (HMAC-SHA1) or v3 (ACS3-HMAC-SHA256)"),
    },
}
_ACCOUNT_KEYS = ("account_id", "sender_id", "sms_sdk_app_id", "sign_name")  # the user's own values
PLACEHOLDERS = frozenset(value.strip('"') for notes in _KEY_NOTES.values() for key, (value, _) in notes.items()
                         if key in _ACCOUNT_KEYS)


def placeholders_left(options: dict) -> list[str]:
    """The keys of one provider's settings still at a starter's placeholder."""
    return sorted(k for k, v in options.items() if isinstance(v, str) and v in PLACEHOLDERS)


_TITLES = {
    "uspeedo": "uSpeedo SendBatchUSMSMessage: up to 1000 numbers a request",
    "tencent": "Tencent Cloud SendMultiGlobalSms: international numbers, up to 200 a request",
    "aliyun": "Alibaba Cloud SendBatchSms: up to 100 numbers a request, one template per request",
}


def starter_text(ptype: str) -> str:
    """A commented config for one provider type; every secret is a ${VAR} reference."""
    cls = provider_class(ptype)
    if cls is None or ptype not in STARTER_TYPES:
        raise SmsCliError(f"no starter config for provider type {ptype!r} (choose {', '.join(STARTER_TYPES)})")
    notes = _KEY_NOTES[ptype]
    keys = [k for k in cls.config_keys if k in cls.env_defaults or k in notes]
    width = max(len(f"{k}: {_value(cls, notes, k)}") for k in keys) + 2
    body = [f"    type: {ptype}"]
    for key in keys:
        line = f"    {key}: {_value(cls, notes, key)}"
        if key in cls.env_defaults:
            note = "secret: from the environment, never written here" if key in cls.secret_keys \
                else "from the environment"
        else:
            note = notes[key][1]
        body.append(f"{line:<{width + 4}}# {note}")
    variables = " and ".join(f"${cls.env_defaults[k]}" for k in cls.config_keys if k in cls.env_defaults)
    return "\n".join([
        "# sms-cli configuration, written by `sms-cli config init`.",
        "# Found via --config, $SMS_CLI_CONFIG, ./sms-cli.yaml, then $XDG_CONFIG_HOME/sms-cli/config.yaml",
        "# (~/.config/sms-cli/config.yaml). ${VAR} reads an environment variable; unknown keys are errors.",
        f"# Replace the placeholders (YOUR-..., 00000), set {variables}, then run `sms-cli config check`.",
        "",
        f"default_provider: {ptype}",
        "",
        "# Region for national numbers (no +country code), an ISO code; --default-region overrides.",
        "# default_region: HK",
        "",
        "providers:",
        f"  # {_TITLES[ptype]}",
        f"  {ptype}:",
        *body,
        f"    # endpoint: {cls.default_endpoint}",
        "    # rate_limit: requests per second across all workers; max_attempts: tries per request",
        "    # prices: {SG: 0.05, default: 0.06}   # per part, for plan and --max-cost",
        "",
        "# What each template takes: rows are checked against it before sending, and `plan`",
        "# counts parts and cost from the text.",
        "# templates:",
        "#   OTP_LOGIN:",
        "#     params: [code]",
        '#     text: "Your code is {1}."',
        "",
    ])


def _value(cls, notes, key) -> str:
    if key in cls.env_defaults:
        return "${" + cls.env_defaults[key] + "}"
    return notes[key][0]


def write_starter(path: Path, ptype: str) -> Path:
    """Write the starter for `ptype` to `path` (mode 0600, the folder created); refuses to
    overwrite an existing file."""
    text = starter_text(ptype)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SmsCliError(f"{path.parent}: cannot create the folder ({exc.strerror})") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SmsCliError(f"{path} already exists; not overwriting it (choose another PATH or remove it)") from None
    except OSError as exc:
        raise SmsCliError(f"{path}: cannot write the config ({exc.strerror})") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise SmsCliError(f"{path}: cannot write the config ({exc.strerror})") from None
    return path
