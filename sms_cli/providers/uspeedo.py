"""uSpeedo: SendBatchUSMSMessage (different content per number) and SendUSMSMessage (one
content, many numbers), signed with the SHA-1 scheme of auth-and-limits.md or Basic auth.

Delivery receipts: GetUSMSSendReceipt, up to 100 SessionNo a request, signed the same way (Basic
auth: GET /api/v1/usms/USMSSendReceipt?id=...). It is asked by SessionNo only, so a message
whose answer was lost (no SessionNo) cannot be found."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Hashable, Iterator
from typing import Any
from urllib.parse import urlencode

from ..core.errors import ConfigError
from ..core.model import ACCEPTED, Kind, Message, Outcome
from .base import (DELIVERED, FAILED, FATAL, OPT_OUT, PENDING, REQUEST, ROW, UNKNOWN, Code,
    CodeTable, Provider, Report, Sent, compact_json)
from .http import RequestFailed

BATCH, SINGLE = "SendBatchUSMSMessage", "SendUSMSMessage"
# Every RetCode the pages list, and its class. Sources: ../shared/specs/auth-and-limits.md
# (uSpeedo section, corrected: 215400 is an unknown outcome, not retryable) and
# uspeedo-SendBatchUSMSMessage.md (FailContent: "Details of unsent messages"). HTTP 429 (nothing
# taken) and HTTP 5xx (unknown) are read by providers/http.py for every provider.
CODES = CodeTable({
    "215392": Code(REQUEST, "bad parameter"),
    "215397": Code(REQUEST, "missing parameter"),
    "215398": Code(FATAL, "the token could not be parsed: check access_key_id / access_key_secret"),
    "171": Code(FATAL, "signature refused: check access_key_secret and the clock"),
    "172": Code(FATAL, "access key not found: check access_key_id"),
    "215400": Code(UNKNOWN, "server error after the request was sent: it may have been taken"),
    "FailContent": Code(ROW, "the target was not sent (FailContent)"),
    # FailContent whose FailureDetails is the documented "phone in the black list"
    "FailContent/black list": Code(OPT_OUT, "phone in the black list"),
}, default=Code(REQUEST, "refused"))
RECEIPT, RECEIPT_BASIC = "GetUSMSSendReceipt", "USMSSendReceipt"  # signed action / Basic auth path
RECEIPT_MAX_SESSIONS = 100  # SessionNo per GetUSMSSendReceipt request
# ReceiptResult -> sms-cli's status; "Unknow" is the API's own spelling
RECEIPT_STATUS = {"Success": DELIVERED, "Fail": FAILED, "SubmitFail": FAILED, "Unknow": PENDING}


def receipt_status(result: str) -> str:
    """A ReceiptResult in sms-cli's vocabulary (anything unheard of: no final word yet)."""
    return RECEIPT_STATUS.get(result, PENDING)


def retcode_outcome(code: int, message: str) -> Outcome:
    """A non-zero RetCode, for a send or a receipt query."""
    return CODES.outcome(str(code), message, request=True)


def encode_value(value: Any) -> str:
    """uSpeedo's signing encoding of one value (see auth-and-limits.md)."""
    parts: list[str] = []
    _encode_into(value, parts)
    return "".join(parts)


def _encode_into(value: Any, parts: list[str]) -> None:
    """encode_value, appending pieces to `parts`: a body of 1000 targets is encoded with one
    join instead of a nested join (and generator) per list and dict."""
    if isinstance(value, str):
        parts.append(value)
    elif isinstance(value, bool):
        parts.append("true" if value else "false")
    elif isinstance(value, int):
        parts.append(str(value))
    elif isinstance(value, float):
        parts.append(str(int(value)) if value.is_integer() else repr(value))
    elif isinstance(value, (list, tuple)):
        for v in value:
            if v.__class__ is str:  # the common leaf, without a call
                parts.append(v)
            elif v is not None:
                _encode_into(v, parts)
    elif isinstance(value, dict):
        for k in sorted(value):
            v = value[k]
            if v.__class__ is str:
                parts.append(k)
                parts.append(v)
            elif v is not None:
                parts.append(k)
                _encode_into(v, parts)
    elif value is not None:
        parts.append(str(value))


def signing_string(body: dict[str, Any], secret: str) -> str:
    parts: list[str] = []
    _encode_into(body, parts)  # a body is a dict: its keys sorted, None values left out
    parts.append(secret)
    return "".join(parts)


def sign(body: dict[str, Any], secret: str) -> str:
    return hashlib.sha1(signing_string(body, secret).encode("utf-8")).hexdigest()


def wire_phone(msg: Message) -> str:
    return f"({msg.country_code}){msg.national}"


def phone_digits(phone: str) -> str:
    """A wire or response phone as country code + national digits, for matching answers."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if phone.lstrip().startswith("(00") or phone.startswith("00"):
        digits = digits[2:]
    elif "(" not in phone and not phone.startswith("+") and len(digits) == 11:
        digits = "86" + digits  # uSpeedo: a number without (CC) is mainland China
    return digits


class USpeedo(Provider):
    type = "uspeedo"
    description = "uSpeedo SendBatchUSMSMessage / SendUSMSMessage, SHA-1 signed or Basic auth"
    config_keys = ("account_id", "access_key_id", "access_key_secret", "sender_id", "auth", "action",
                   "receipt_rate_limit", "report_delay")
    secret_keys = ("access_key_secret",)
    env_defaults = {"access_key_id": "USPEEDO_ACCESS_KEY_ID", "access_key_secret": "USPEEDO_ACCESS_KEY_SECRET"}
    required_keys = ("access_key_id", "access_key_secret")
    default_endpoint = "https://api.uspeedo.com/api"
    default_rate_limit = 50.0
    has_receipts = True
    max_batch = 1000
    codes = CODES
    # receipts.md: "query again 5-10 min after sending; after 12 h with no status, contact support"
    report_delay = 12 * 3600.0

    def is_opt_out(self, outcome) -> bool:
        # FailContent carries text only; the documented opt-out reason is "phone in the black list"
        if outcome.code == "FailContent":
            return "black list" in outcome.message.lower()
        return super().is_opt_out(outcome)

    def missing_settings(self) -> list[str]:
        # SendBatchUSMSMessage.md: AccountId is required with the signed /api endpoint (Basic auth
        # carries the account in its credentials)
        missing = super().missing_settings()
        if not self.basic and not self.account_id:
            missing.append("account_id (the AccountId of the uSpeedo project)")
        return missing

    @classmethod
    def check_settings(cls, settings, where):
        if settings.get("auth", "signature") not in ("signature", "basic"):
            raise ConfigError(f"{where}.auth: must be 'signature' or 'basic'")
        if settings.get("action", BATCH) not in (BATCH, SINGLE):
            raise ConfigError(f"{where}.action: must be {BATCH} or {SINGLE}")
        account = settings.get("account_id")
        if account and not account.isdigit():
            raise ConfigError(f"{where}.account_id: must be a whole number")

    def __init__(self, settings, templates=None, *, concurrency=4, transport=None):
        super().__init__(settings, templates, concurrency=concurrency, transport=transport)
        self.basic = settings.get("auth", "signature") == "basic"
        self._action = settings.get("action", BATCH)
        account = settings.get("account_id")
        self.account_id = int(account) if account else None
        self.key_id = settings.get("access_key_id")
        self.secret = settings.get("access_key_secret")
        self.default_sender = settings.get("sender_id")

    @property
    def action(self) -> str:
        return self._action

    def prepare(self, msg: Message) -> str | None:
        problem = self.to_positional(msg)
        if problem:
            return problem
        if msg.user_id and len(msg.user_id) > 32:
            return "user_id longer than 32 characters (uSpeedo UserId limit)"
        return None

    def batch_key(self, msg: Message) -> Hashable:
        if self._action == SINGLE:  # one content per request
            return (msg.template_id, tuple(msg.params), self._sender(msg), msg.extend_code, msg.user_id)
        return None

    def _sender(self, msg: Message) -> str | None:
        return msg.sender_id or self.default_sender

    # --- request ---------------------------------------------------------------------
    def build_body(self, batch: list[Message]) -> dict[str, Any]:
        return self._request(batch)[0]

    def _request(self, batch: list[Message]) -> tuple[dict[str, Any], str | None]:
        """The request body, and for SendBatchUSMSMessage the signed encoding of its TaskContent."""
        content = None
        if self._action == SINGLE:
            first = batch[0]
            body: dict[str, Any] = {
                "PhoneNumbers": [wire_phone(m) for m in batch],
                "TemplateId": first.template_id,
                "TemplateParams": list(first.params) or None,
                "SenderId": self._sender(first),
                "ExtendCode": first.extend_code,
                "UserId": first.user_id,
            }
        else:
            body, content = self._batch_body(batch)
        body = {k: v for k, v in body.items() if v is not None}
        if not self.basic:
            body = {"Action": self._action, **({"AccountId": self.account_id} if self.account_id else {}), **body}
        return body, content

    def signature(self, body: dict[str, Any], content: str | None) -> str:
        """X-Signature; with the TaskContent's encoding at hand, the top-level keys (AccountId,
        Action, TaskContent, sorted) are all that is left to encode."""
        if content is None or set(body) - {"Action", "AccountId", "TaskContent"}:
            return sign(body, self.secret)
        account = f"AccountId{body['AccountId']}" if "AccountId" in body else ""
        text = f"{account}Action{body['Action']}TaskContent{content}{self.secret}"
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def _batch_body(self, batch: list[Message]) -> tuple[dict[str, Any], str]:
        """The TaskContent body and, built in the same pass, what its signature covers: the
        encoding `signing_string` gives for this shape (item keys SenderId, Target, TemplateId;
        target keys ExtendCode, Phone, TemplateParams, UserId, in that sorted order), without
        walking the finished body again. tests/test_uspeedo.py checks the two agree."""
        # runs once per row of every request: helpers (_sender, wire_phone, correlation) are
        # inlined, and the current item's Target list and signing pieces are kept at hand
        items: dict[tuple, tuple[list, list, dict]] = {}  # (template, sender) -> targets, pieces, item
        content: list[dict[str, Any]] = []
        default_sender = self.default_sender
        for m in batch:
            sender = m.sender_id or default_sender
            found = items.get((m.template_id, sender))
            if found is None:
                targets: list[dict[str, Any]] = []
                item: dict[str, Any] = {"TemplateId": m.template_id, "Target": targets}
                if sender:
                    item["SenderId"] = sender
                content.append(item)
                found = items[(m.template_id, sender)] = (targets, [], item)
            targets, pieces, _ = found
            phone = f"({m.country_code}){m.national}"  # wire_phone
            target: dict[str, Any] = {"Phone": phone}
            user = (m.user_id or m.key)[:32]  # m.correlation
            if m.extend_code:
                target["ExtendCode"] = m.extend_code
                pieces += ("ExtendCode", m.extend_code)
            pieces += ("Phone", phone)
            if m.params:
                params = target["TemplateParams"] = list(m.params)
                pieces.append("TemplateParams")
                pieces += params
            target["UserId"] = user
            pieces += ("UserId", user)
            targets.append(target)
        signed: list[str] = []
        for targets, pieces, item in items.values():
            if "SenderId" in item:
                signed += ("SenderId", item["SenderId"])
            signed.append("Target")
            signed += pieces
            signed += ("TemplateId", item["TemplateId"])
        return {"TaskContent": content}, "".join(signed)

    def _send(self, batch: list[Message]) -> list[Outcome]:
        body, content = self._request(batch)
        data = compact_json(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.basic:
            token = base64.b64encode(f"{self.key_id}:{self.secret}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
            url = f"{self.endpoint.rstrip('/')}/v1/usms/{self._action}"
        else:
            headers.update({
                "X-Access-Key-Id": self.key_id, "X-Signature": self.signature(body, content),
                "X-Timestamp": str(int(time.time())), "X-Nonce": secrets.token_hex(16),
            })
            url = self.endpoint
        resp = self.http.post(url, data, headers, action=self._action, count=len(batch))
        if resp.status_code in (401, 403):
            raise RequestFailed(Outcome(Kind.FATAL, f"HTTP{resp.status_code}", "credentials refused"))
        try:
            answer = resp.json()
            code = int(answer.get("RetCode"))
        except (ValueError, TypeError, AttributeError):
            raise RequestFailed(Outcome(Kind.UNKNOWN, "BadResponse",
                                        f"HTTP {resp.status_code} with an unreadable body")) from None
        message = str(answer.get("Message") or "")
        if code != 0 and not took_some(answer):
            raise RequestFailed(retcode_outcome(code, message))
        # auth-and-limits.md: "an answer with a SessionNo or SuccessCount > 0 took every target not
        # named in FailContent, whatever its RetCode"
        return self._read_success(batch, answer)

    def _read_success(self, batch: list[Message], answer: dict) -> list[Outcome]:
        session = answer.get("SessionNo") or ""
        if isinstance(session, list):
            session = ",".join(map(str, session))
        accepted = Outcome(Kind.ACCEPTED, ref=str(session)) if session else ACCEPTED
        entries = fail_entries(answer)
        if not entries:
            return [accepted] * len(batch)
        if self._action == SINGLE:  # one content for every number: a phone is the whole target
            entries = [{"phone": e["phone"], "reason": e["reason"]} for e in entries]
        fates = match_failures(batch, entries, self._sender, lambda m: (m.user_id or m.key)[:32]
                               if self._action == BATCH else m.user_id)
        out = []
        for m, fate in zip(batch, fates):
            if fate is None:
                out.append(accepted)
            elif fate is AMBIGUOUS:
                out.append(Outcome(Kind.UNKNOWN, "FailContentAmbiguous",
                                   "the answer's FailContent does not say which of the rows it names failed: "
                                   "this row may have been taken (settle with sms-cli receipts)", ref=accepted.ref))
            else:
                out.append(Outcome(Kind.PERMANENT, "FailContent", fate))
        return out

    # --- delivery receipts -------------------------------------------------------------------
    def expected_corr(self, row: Sent) -> str | None:
        # SendBatchUSMSMessage carries each row's correlation in UserId (cut to 32 characters);
        # SendUSMSMessage only a row's own user_id, which the journal does not tell from its key
        return (row.corr or row.key)[:32] if self._action == BATCH else None

    def receipt_pages(self, rows: list[Sent], now: float) -> Iterator[tuple[list[Sent], list[Report]]]:
        sessions: dict[str, list[Sent]] = {}
        for r in rows:
            for sn in r.ref.split(","):  # Basic auth answers carry a list of SessionNo
                if sn.strip():
                    sessions.setdefault(sn.strip(), []).append(r)
        names = list(sessions)
        for i in range(0, len(names), RECEIPT_MAX_SESSIONS):
            chunk = names[i:i + RECEIPT_MAX_SESSIONS]
            covered = list({r.id: r for sn in chunk for r in sessions[sn]}.values())
            yield covered, self._receipts(chunk)

    def _receipts(self, sessions: list[str]) -> list[Report]:
        if self.basic:
            token = base64.b64encode(f"{self.key_id}:{self.secret}".encode()).decode()
            url = f"{self.endpoint.rstrip('/')}/v1/usms/{RECEIPT_BASIC}?{urlencode([('id', s) for s in sessions])}"
            resp = self._receipt_request("GET", url, headers={"Authorization": f"Basic {token}"}, action=RECEIPT)
        else:
            body: dict[str, Any] = {"Action": RECEIPT, **({"AccountId": self.account_id} if self.account_id else {}),
                                    "SessionNoSet": sessions}
            headers = {"Content-Type": "application/json", "X-Access-Key-Id": self.key_id,
                       "X-Signature": sign(body, self.secret), "X-Timestamp": str(int(time.time())),
                       "X-Nonce": secrets.token_hex(16)}
            resp = self._receipt_request("POST", self.endpoint, body=compact_json(body).encode("utf-8"),
                                         headers=headers, action=RECEIPT)
        return read_receipts(resp.content)


AMBIGUOUS = object()  # match_failures: a row a FailContent entry may or may not name


def took_some(answer: dict) -> bool:
    """Did this answer take messages (a SessionNo, or SuccessCount > 0), whatever its RetCode?"""
    try:
        count = int(answer.get("SuccessCount") or 0)
    except (TypeError, ValueError):
        count = 0
    return bool(answer.get("SessionNo")) or count > 0


def fail_entries(answer: dict) -> list[dict]:
    """Every failed Target of an answer, with the fields it names (a FailContent entry is a whole
    Target under its TemplateId and SenderId; FailedTargetPhones, of Basic auth, has no template)."""
    out = []
    for item in answer.get("FailContent") or []:
        if not isinstance(item, dict):
            continue
        for t in item.get("Target") or []:
            if not isinstance(t, dict):
                continue
            e = {"phone": phone_digits(str(t.get("Phone", ""))), "template": item.get("TemplateId"),
                 "reason": str(t.get("FailureDetails") or item.get("FailureDetails") or "rejected")}
            if item.get("SenderId"):
                e["sender"] = item["SenderId"]
            for key, name in (("params", "TemplateParams"), ("user", "UserId"), ("extend", "ExtendCode")):
                if name in t:
                    e[key] = t[name]
            out.append(e)
    for t in answer.get("FailedTargetPhones") or []:
        if isinstance(t, dict):
            e = {"phone": phone_digits(str(t.get("Phone", ""))), "reason": str(t.get("FailureReason") or "rejected")}
            if "TemplateParams" in t:
                e["params"] = t["TemplateParams"]
            out.append(e)
    return out


def match_failures(batch: list[Message], entries: list[dict], sender_of, user_of) -> list:
    """Each row's fate from the failed Targets: None (taken), a reason (refused) or AMBIGUOUS.

    An entry is matched on every field it carries (phone, template, sender, params, UserId,
    ExtendCode). Entries naming the same rows are counted together: as many entries as rows
    means each of those rows failed; fewer (or more), or an entry that names no row, means
    the answer does not say which row failed, and those rows are unknown, never a guess."""
    def fits(m: Message, e: dict) -> bool:
        return (e["phone"] == f"{m.country_code}{m.national}"
                and ("template" not in e or e["template"] == m.template_id)
                and ("sender" not in e or e["sender"] == (sender_of(m) or ""))
                and ("params" not in e or [str(p) for p in e["params"] or []] == [str(p) for p in m.params or []])
                and ("user" not in e or (e["user"] or None) == (user_of(m) or None))
                and ("extend" not in e or (e["extend"] or None) == (m.extend_code or None)))

    groups: dict[tuple[int, ...], list[dict]] = {}
    for e in entries:
        rows = tuple(i for i, m in enumerate(batch) if fits(m, e))
        if not rows:  # names no row of this request: every row it could be about is unknown
            rows = tuple(i for i, m in enumerate(batch) if e["phone"] == f"{m.country_code}{m.national}") \
                or tuple(range(len(batch)))
            groups.setdefault(("none",) + rows, []).append(e)  # never "as many as rows"
            continue
        groups.setdefault(rows, []).append(e)
    fates: list = [None] * len(batch)
    unsure: set[int] = set()
    for key, found in groups.items():
        rows = [i for i in key if i != "none"]
        if key[0] != "none" and len(found) == len(rows):
            for i, e in zip(rows, found):
                fates[i] = e["reason"]  # the rows are alike in all the entries say: each failed
        else:
            unsure.update(rows)
    for i in unsure:
        if fates[i] is None:
            fates[i] = AMBIGUOUS
    return fates


def read_receipts(body: bytes) -> list[Report]:
    """GetUSMSSendReceipt's answer -> one Report per ReceiptPerPhone."""
    try:
        answer = json.loads(body.decode("utf-8"))
        code = int(answer.get("RetCode"))
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
        raise RequestFailed(Outcome(Kind.RETRYABLE, "BadResponse", "unreadable receipt answer")) from None
    if code != 0:
        raise RequestFailed(retcode_outcome(code, str(answer.get("Message") or "")))
    out = []
    for session in answer.get("Data") or []:
        if not isinstance(session, dict):
            continue
        sn = str(session.get("SessionNo") or "")
        for p in session.get("ReceiptSet") or []:
            if not isinstance(p, dict) or not p.get("Phone"):
                continue
            wire, cc = str(p["Phone"]), str(p.get("CountryCode") or "")
            bare = "(" not in wire and not wire.startswith(("+", "00"))
            digits = (cc + "".join(ch for ch in wire if ch.isdigit())) if bare and cc else phone_digits(wire)
            result = str(p.get("ReceiptResult") or "")
            when = _number(p.get("ReceiptTime"))
            if when and when > 1e12:  # milliseconds
                when /= 1000
            parts = _number(p.get("CostCount"))
            out.append(Report(sn, "+" + digits, receipt_status(result), str(p.get("ReceiptCode") or ""),
                              str(p.get("ReceiptDesc") or ""), when or None,
                              int(parts) if parts is not None and parts > 0 else None,
                              str(p["UserId"]) if p.get("UserId") else None, raw=result))
    return out


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
