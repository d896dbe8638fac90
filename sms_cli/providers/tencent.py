"""Tencent Cloud SendMultiGlobalSms (international SMS), signed with TC3-HMAC-SHA256.

One request carries up to 200 numbers, each with its own template and parameters, and the
answer holds one status per number, so acceptance is per number.

Delivery receipts: PullSmsSendStatusByPhoneNumber (2021-01-11, 20 requests/s, one number per
request, reports of the last 7 days), or with `receipt_source: pull` the PullSmsSendStatus queue
(100 requests/s, 100 reports a page; each report is handed out once, so every page is kept
before the next is asked for). Both find a number's messages without their SerialNo, so a row
whose answer was lost can be settled.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from urllib.parse import urlsplit

from ..core.errors import ConfigError
from ..core.model import Kind, Message, Outcome
from .base import (BISECT, CLASS_KIND, DELIVERED, FAILED, FATAL, OPT_OUT, PENDING, REQUEST, RETRY,
    ROW, UNKNOWN, Code, CodeTable, Provider, Report, Sent, compact_json)
from .http import RequestFailed

ACTION = "SendMultiGlobalSms"
VERSION = "2021-01-11"
SERVICE = "sms"
REGIONS = ("ap-singapore", "eu-frankfurt")  # the only regions this API is offered in
DEFAULT_REGION = "ap-singapore"
CONTENT_TYPE = "application/json; charset=utf-8"
ALGORITHM = "TC3-HMAC-SHA256"
SIGNED_HEADERS = "content-type;host"
PULL, PULL_BY_PHONE = "PullSmsSendStatus", "PullSmsSendStatusByPhoneNumber"
RECEIPT_SOURCES = ("phone", "pull")  # receipt_source: by number (the default) or the pull-once queue
RECEIPT_LIMIT = 100  # reports per request, both actions
RECEIPT_LOOKBACK = 7 * 86400  # PullSmsSendStatusByPhoneNumber: BeginTime within the last 7 days
CLOCK_SLACK = 300  # seconds: a report's time may be a little before our idea of the send time
REPORT_STATUS = {"SUCCESS": DELIVERED, "FAIL": FAILED}  # ReportStatus -> sms-cli's status

# Every code the pages list, and its class. Sources: ../shared/specs/auth-and-limits.md (Tencent
# section; corrected there: InternalError* is an unknown outcome, InternalError.Timeout included)
# and tencent-SendMultiGlobalSms.md (its error code table). Per-number codes come in the status
# of their own number; when one refuses a whole request, the request is split (BISECT).
_ONE_NUMBER = "caps or refuses this one number"
CODES = CodeTable({
    "RequestLimitExceeded*": Code(RETRY, "request rate limit: nothing was taken"),
    "InternalError*": Code(UNKNOWN, "server error: the message may have been taken"),
    # the clock differs from Tencent's by over 10 minutes: refused before processing, every time
    "InternalError.RequestTimeException": Code(FATAL, "this machine's clock is off by more than 10 minutes"),
    "LimitExceeded.AppDailyLimit": Code(FATAL, "the application's daily limit was reached"),
    "LimitExceeded.DailyLimit": Code(FATAL, "the account's daily Global SMS limit was reached"),
    "LimitExceeded.AppGlobalDailyLimit": Code(FATAL, "the application's daily Global SMS limit was reached"),
    "LimitExceeded.AppMainlandChinaDailyLimit": Code(FATAL, "the application's daily mainland limit was reached"),
    "FailedOperation.InsufficientBalanceInSmsPackage": Code(FATAL, "the SMS package balance is not enough"),
    "AuthFailure*": Code(FATAL, "credentials refused: check secret_id / secret_key"),
    "UnauthorizedOperation*": Code(FATAL, "the account may not send this (permissions, arrears, app disabled)"),
    "InvalidParameterValue.SdkAppIdNotExist": Code(FATAL, "sms_sdk_app_id does not exist"),
    "FailedOperation.PhoneNumberInBlacklist": Code(OPT_OUT, "the number is in the opt-out list"),
    "InvalidParameterValue.IncorrectPhoneNumber": Code(BISECT, "incorrect mobile number format"),
    "UnsupportedOperation.ContainDomesticPhoneNumber": Code(BISECT, "a mainland China number in the request"),
    "LimitExceeded.PhoneNumberDailyLimit": Code(BISECT, _ONE_NUMBER),
    "LimitExceeded.PhoneNumberOneHourLimit": Code(BISECT, _ONE_NUMBER),
    "LimitExceeded.PhoneNumberSameContentDailyLimit": Code(BISECT, _ONE_NUMBER),
    "LimitExceeded.PhoneNumberThirtySecondLimit": Code(BISECT, _ONE_NUMBER),
    "FailedOperation.ContainSensitiveWord": Code(ROW, "the message contains sensitive words"),
    "FailedOperation.MarketingSendTimeConstraint": Code(ROW, "marketing messages only 8:00-22:00"),
    "FailedOperation.SignatureIncorrectOrUnapproved": Code(ROW, "sender id not approved"),
    "FailedOperation.TemplateIncorrectOrUnapproved": Code(ROW, "template not approved or content does not match"),
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": Code(ROW, "parameters do not match the template"),
    "FailedOperation.TemplateUnapprovedOrNotExist": Code(ROW, "template not approved or does not exist"),
    "InvalidParameterValue.ContentLengthLimit": Code(ROW, "message too long"),
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter": Code(ROW, "a URL in a template variable"),
    "InvalidParameterValue.TemplateParameterFormatError": Code(ROW, "verification code variable: 0-6 digits only"),
    "InvalidParameterValue.TemplateParameterLengthLimit": Code(ROW, "a template variable over 12 characters"),
    "LimitExceeded.AppCountryOrRegionDailyLimit": Code(ROW, "the daily limit of this country was reached"),
    "LimitExceeded.AppCountryOrRegionInBlacklist": Code(ROW, "this country is not in the application's list"),
    "LimitExceeded.DeliveryFrequencyLimit": Code(ROW, "the delivery rate limit policy was hit"),
    "UnsupportedOperation*": Code(ROW, "operation not supported for this number or template"),
    "FailedOperation.FailResolvePacket": Code(REQUEST, "the request could not be parsed"),
    "InvalidParameterValue.MultiSmsInfoSetEmpty": Code(REQUEST, "empty request"),
    "LimitExceeded.PhoneNumberCountLimit": Code(REQUEST, "more than 200 numbers in one request"),
    "MissingParameter*": Code(REQUEST, "a required parameter is missing"),
}, default=Code(ROW, "refused"))


# --- signing (pure, tested against the published example) ------------------------------------
def canonical_request(host: str, content_type: str, payload: bytes) -> str:
    """TC3 canonical request for `POST /` with the two signed headers."""
    return "\n".join([
        "POST", "/", "",
        f"content-type:{content_type}\nhost:{host}\n",
        SIGNED_HEADERS,
        hashlib.sha256(payload).hexdigest(),
    ])


def hashed_canonical_request(host: str, content_type: str, payload: bytes) -> str:
    return hashlib.sha256(canonical_request(host, content_type, payload).encode("utf-8")).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3_signature(secret_id: str, secret_key: str, service: str, host: str, content_type: str,
                  payload: bytes, timestamp: int) -> tuple[str, str]:
    """(Authorization header, signature hex) for one request."""
    date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join([ALGORITHM, str(timestamp), scope,
                                hashed_canonical_request(host, content_type, payload)])
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    k_signing = _hmac(_hmac(k_date, service), "tc3_request")
    signature = hmac.new(k_signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    authorization = (f"{ALGORITHM} Credential={secret_id}/{scope}, "
                     f"SignedHeaders={SIGNED_HEADERS}, Signature={signature}")
    return authorization, signature


# --- answers ---------------------------------------------------------------------------------
def classify(code: str) -> Kind:
    """How a Tencent error code (request-level or per number) is handled."""
    if code == "Ok":
        return Kind.ACCEPTED
    return CLASS_KIND[CODES.lookup(code).cls]


def report_status(value: str) -> str:
    return REPORT_STATUS.get(value, PENDING)


def read_receipts(body: bytes) -> list[Report]:
    """PullSmsSendStatus(ByPhoneNumber)'s answer -> one Report per PullSmsSendStatus."""
    try:
        answer = json.loads(body.decode("utf-8"))["Response"]
        if not isinstance(answer, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RequestFailed(Outcome(Kind.RETRYABLE, "BadResponse", "unreadable receipt answer")) from None
    error = answer.get("Error")
    if error:
        code = str(error.get("Code") or "Error") if isinstance(error, dict) else "Error"
        message = str(error.get("Message") or "") if isinstance(error, dict) else str(error)
        raise RequestFailed(CODES.outcome(code, message))
    out = []
    for s in answer.get("PullSmsSendStatusSet") or []:
        if not isinstance(s, dict):
            continue
        phone = str(s.get("PhoneNumber") or "")
        if not phone and s.get("SubscriberNumber"):
            phone = f"+{s.get('CountryCode') or ''}{s['SubscriberNumber']}"
        if not phone:
            continue
        status = str(s.get("ReportStatus") or "")
        code = str(s.get("Description") or "")
        try:
            received = float(s.get("UserReceiveTime")) or None
        except (TypeError, ValueError):
            received = None
        context = s.get("SessionContext")
        out.append(Report(str(s.get("SerialNo") or ""), "+" + _digits(phone), report_status(status), code, code,
                          received, None, str(context) if context else None, raw=status))
    return out


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def read_answer(batch: list[Message], body: bytes) -> list[Outcome]:
    """One outcome per row from a response body; raises RequestFailed for request-level errors."""
    try:
        answer = json.loads(body.decode("utf-8"))["Response"]
        if not isinstance(answer, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RequestFailed(Outcome(Kind.UNKNOWN, "BadResponse", "unreadable response body")) from None
    error = answer.get("Error")
    if error:
        code = str(error.get("Code") or "Error") if isinstance(error, dict) else "Error"
        message = str(error.get("Message") or "") if isinstance(error, dict) else str(error)
        raise RequestFailed(CODES.outcome(code, message, request=True))
    statuses = answer.get("SendMultiStatusSet")
    if not isinstance(statuses, list):
        raise RequestFailed(Outcome(Kind.UNKNOWN, "BadResponse", "no SendMultiStatusSet in the answer"))
    by_phone: dict[str, list[dict]] = {}
    for status in statuses:
        if isinstance(status, dict):
            by_phone.setdefault(_digits(str(status.get("PhoneNumber", ""))), []).append(status)
    rows_of: dict[str, int] = {}
    for m in batch:
        rows_of[_digits(m.phone)] = rows_of.get(_digits(m.phone), 0) + 1
    out = []
    for m in batch:
        entries = by_phone.get(_digits(m.phone)) or []
        # the same number may appear twice in one request: SessionContext tells them apart; a
        # status that does not say which of them it is settles neither (never a guess)
        hit = next((s for s in entries if s.get("SessionContext") == m.correlation), None)
        if hit is None and len(entries) == 1 and rows_of[_digits(m.phone)] == 1:
            hit = entries[0]
        if hit is None:
            out.append(Outcome(Kind.UNKNOWN, "NoStatus", "the answer has no status that is this row's"))
            continue
        entries.remove(hit)
        code = str(hit.get("Code") or "")
        if code == "Ok":
            out.append(Outcome(Kind.ACCEPTED, ref=str(hit.get("SerialNo") or "")))
        else:
            # its own number's status: nothing to split, whatever the class
            out.append(replace(CODES.outcome(code or "NoCode", str(hit.get("Message") or "")), per_number=False))
    return out


class Tencent(Provider):
    type = "tencent"
    description = "Tencent Cloud SendMultiGlobalSms (international numbers), TC3-HMAC-SHA256 signed"
    config_keys = ("region", "sms_sdk_app_id", "secret_id", "secret_key", "sender_id", "receipt_source",
                   "receipt_rate_limit", "report_delay")
    secret_keys = ("secret_key",)
    env_defaults = {"secret_id": "TENCENTCLOUD_SECRET_ID", "secret_key": "TENCENTCLOUD_SECRET_KEY"}
    required_keys = ("secret_id", "secret_key", "sms_sdk_app_id")
    default_endpoint = "https://sms.intl.tencentcloudapi.com"
    default_rate_limit = 10.0
    max_batch = 200
    codes = CODES
    has_receipts = True
    finds_lost_answers = True  # a number's reports can be read without the SerialNo
    receipt_lookback = RECEIPT_LOOKBACK
    # no documented bound on how late a report may come: the --give-up-after default (receipts.md:
    # three days, as GOV.UK Notify times out pending messages); config report_delay overrides it
    report_delay = 72 * 3600.0

    @classmethod
    def check_settings(cls, settings, where):
        region = settings.get("region", DEFAULT_REGION)
        if region not in REGIONS:
            raise ConfigError(f"{where}.region: must be one of {', '.join(REGIONS)} (got {region!r})")
        source = settings.get("receipt_source", "phone")
        if source not in RECEIPT_SOURCES:
            raise ConfigError(f"{where}.receipt_source: must be 'phone' (PullSmsSendStatusByPhoneNumber) or "
                              f"'pull' (the PullSmsSendStatus queue, activated in SMS Helper) (got {source!r})")

    def __init__(self, settings, templates=None, *, concurrency=4, transport=None):
        super().__init__(settings, templates, concurrency=concurrency, transport=transport)
        self.check_settings(settings, f"provider {settings.name!r}")  # settings built without config.py too
        self.region = settings.get("region", DEFAULT_REGION)
        self.app_id = settings.get("sms_sdk_app_id")
        self.secret_id = settings.get("secret_id")
        self.secret_key = settings.get("secret_key")
        self.default_sender = settings.get("sender_id")
        self.host = urlsplit(self.endpoint).netloc

    @property
    def action(self) -> str:
        return ACTION

    def prepare(self, msg: Message) -> str | None:
        if msg.country_code == 86:
            return "Tencent SendMultiGlobalSms does not accept mainland China (+86) numbers"
        return self.to_positional(msg)

    def build_body(self, batch: list[Message]) -> dict:
        items = []
        for m in batch:
            item = {"PhoneNumber": m.phone, "TemplateId": m.template_id}
            if m.params:
                item["TemplateParamSet"] = [str(p) for p in m.params]
            sender = m.sender_id or self.default_sender
            if sender:
                item["SenderId"] = sender
            item["SessionContext"] = m.correlation
            items.append(item)
        return {"SmsSdkAppId": self.app_id, "MultiSmsInfoSet": items}

    def _headers(self, action: str, payload: bytes) -> dict[str, str]:
        """The TC3-HMAC-SHA256 signed headers of one request."""
        timestamp = int(time.time())
        authorization, _ = tc3_signature(self.secret_id, self.secret_key, SERVICE, self.host,
                                         CONTENT_TYPE, payload, timestamp)
        return {
            "Content-Type": CONTENT_TYPE, "Host": self.host, "X-TC-Action": action,
            "X-TC-Version": VERSION, "X-TC-Timestamp": str(timestamp), "X-TC-Region": self.region,
            "Authorization": authorization,
        }

    def _send(self, batch: list[Message]) -> list[Outcome]:
        payload = compact_json(self.build_body(batch)).encode("utf-8")
        resp = self.http.post(self.endpoint, payload, self._headers(ACTION, payload), action=ACTION, count=len(batch))
        return read_answer(batch, resp.content)

    # --- delivery receipts -------------------------------------------------------------------
    @property
    def pull_queue(self) -> bool:
        return self.settings.get("receipt_source", "phone") == "pull"

    @property
    def default_receipt_rate(self) -> float:  # the documented limits of the two actions
        return 100.0 if self.pull_queue else 20.0

    @property
    def receipts_consumed(self) -> bool:
        return self.pull_queue

    def expected_corr(self, row: Sent) -> str | None:
        return row.corr or row.key  # SessionContext (echoed only where SMS Helper enabled it)

    def receipt_pages(self, rows: list[Sent], now: float) -> Iterator[tuple[list[Sent], list[Report]]]:
        if self.pull_queue:
            while True:  # the caller keeps each page before the next is asked for
                page = self._receipts(PULL, {"SmsSdkAppId": self.app_id, "Limit": RECEIPT_LIMIT})
                yield [], page
                if len(page) < RECEIPT_LIMIT:
                    break
            yield rows, []  # every row has been looked for
            return
        by_phone: dict[str, list[Sent]] = {}
        for r in rows:
            by_phone.setdefault(r.phone, []).append(r)
        oldest = now - RECEIPT_LOOKBACK + 60
        for phone, group in by_phone.items():
            begin = int(max(min(r.sent for r in group) - CLOCK_SLACK, oldest))
            yield group, self._reports_between(phone, begin, int(now) + 1)

    def _reports_between(self, phone: str, begin: int, end: int) -> list[Report]:
        """Every report of `phone` from `begin` to `end`. The API returns at most 100 a request
        and its Offset must be 0 (receipts.md), so a full answer may hide more: the window is
        halved until each part comes back short. A one-second window still full cannot be read
        whole: its number goes in `incomplete`, and none of its rows is declared not found."""
        out: list[Report] = []
        seen: set[tuple] = set()
        windows = [(begin, end)]
        while windows:
            b, e = windows.pop()
            page = self._receipts(PULL_BY_PHONE, {"SmsSdkAppId": self.app_id, "PhoneNumber": phone, "BeginTime": b,
                                                  "EndTime": e, "Offset": 0, "Limit": RECEIPT_LIMIT})
            if len(page) >= RECEIPT_LIMIT:
                if e > b:
                    mid = (b + e) // 2
                    windows += [(mid + 1, e), (b, mid)]  # the earlier half first
                    continue
                self.incomplete.add(_digits(phone))
            for r in page:  # adjacent windows may both hold a report on their edge
                key = (r.ref, r.phone, r.status, r.received, r.corr)
                if key not in seen:
                    seen.add(key)
                    out.append(r)
        return out

    def _receipts(self, action: str, body: dict) -> list[Report]:
        payload = compact_json(body).encode("utf-8")
        resp = self._receipt_request("POST", self.endpoint, body=payload, headers=self._headers(action, payload),
                                     action=action)
        return read_receipts(resp.content)
