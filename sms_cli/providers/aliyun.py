"""Alibaba Cloud SendBatchSms, signed with the RPC HMAC-SHA1 scheme (`signature: rpc`, the
default) or ACS3-HMAC-SHA256 (`signature: v3`, the scheme Alibaba now recommends).

One request carries up to 100 numbers that share one TemplateCode; each number has its own
sign name and named parameters. The answer holds one code for the whole request, so acceptance
is all or nothing. Each request's OutId is the input's key prefix (<input hash[:12]>), so a
report can be told from another campaign's to the same number.

Delivery receipts: QuerySendDetails, one number and one day (Beijing time, the last 30 days) per
request, 50 records a page; with the BizId for a row whose answer was read, without it for a row
whose answer was lost (found by number, date, template and OutId).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections import Counter
from collections.abc import Hashable, Iterator
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlsplit

import phonenumbers

from ..core.errors import ConfigError
from ..core.model import Kind, Message, Outcome, mask_phone
from .base import (BISECT, CLASS_KIND, DELIVERED, FAILED, FATAL, PENDING, REQUEST, RETRY, UNKNOWN,
    Code, CodeTable, Provider, Report, Sent, compact_json)
from .http import RequestFailed

ACTION = "SendBatchSms"
VERSION = "2017-05-25"
FORM = "application/x-www-form-urlencoded"
ACS3 = "ACS3-HMAC-SHA256"
SIGNATURES = ("rpc", "v3")

# Every code the pages list, and its class. Sources: ../shared/specs/auth-and-limits.md (Alibaba
# Cloud section; corrected there: isp.SYSTEM_ERROR / HTTP 5xx are unknown outcomes, and
# isv.BLACK_KEY_CONTROL_LIMIT is about a template variable's content, not the number) and
# Dysmsapi's error centre (error-center.aliyun.com/status/product/Dysmsapi). One code answers
# the whole request, so a code caused by one row is BISECT: the request is split until that
# row stands alone. An opted-out number is not refused here at all (its receipt fails), so no
# code of this API touches the suppression list.
CODES = CodeTable({
    "Throttling*": Code(RETRY, "flow control: nothing was taken"),
    "SignatureNonceUsed": Code(RETRY, "the nonce was seen before: refused before processing"),
    "isp.SYSTEM_ERROR": Code(UNKNOWN, "server error: the request may have been taken"),
    "ServiceUnavailable": Code(UNKNOWN, "server error: the request may have been taken"),
    "InternalError": Code(UNKNOWN, "server error: the request may have been taken"),
    "isv.MOBILE_NUMBER_ILLEGAL": Code(BISECT, "the number is not valid"),
    "isv.TEMPLATE_MISSING_PARAMETERS": Code(BISECT, "a template variable is missing"),
    "isv.INVALID_JSON_PARAM": Code(BISECT, "the row's parameters are not valid JSON"),
    "isv.PARAM_LENGTH_LIMIT": Code(BISECT, "a template variable is too long"),
    "isv.PARAM_NOT_SUPPORT_URL": Code(BISECT, "a template variable holds a URL, which is not allowed"),
    "isv.TEMPLATE_PARAMS_ILLEGAL": Code(BISECT, "a template variable holds content the template does not allow"),
    "isv.BLACK_KEY_CONTROL_LIMIT": Code(BISECT, "its template variables hold restricted content (a blocked keyword, "
                                                "sensitive content or a URL); the number itself is not blocked", say=True),
    "isv.BUSINESS_LIMIT_CONTROL": Code(BISECT, "the number's frequency cap was reached; not retried in this run"),
    "isv.SMS_TEMPLATE_ILLEGAL": Code(REQUEST, "the template does not exist or is not approved"),
    "isv.SMS_SIGNATURE_ILLEGAL": Code(REQUEST, "the sign name does not exist or is not approved"),
    "isv.MOBILE_COUNT_OVER_LIMIT": Code(REQUEST, "too many numbers in one request"),
    "isv.DAY_LIMIT_CONTROL": Code(FATAL, "the account's daily sending limit was reached"),
    "isv.MONTH_LIMIT_CONTROL": Code(FATAL, "the account's monthly sending limit was reached"),
    "isv.AMOUNT_NOT_ENOUGH": Code(FATAL, "the account balance is not enough"),
    "isv.OUT_OF_SERVICE": Code(FATAL, "the account is out of service (overdue)"),
    "isv.PRODUCT_UN_SUBSCRIPT": Code(FATAL, "the account has not subscribed to SMS"),
    "isv.ACCOUNT_NOT_EXISTS": Code(FATAL, "the account does not exist"),
    "isv.ACCOUNT_ABNORMAL": Code(FATAL, "the account is abnormal"),
    "isv.DENY_IP_RANGE": Code(FATAL, "this machine's IP address is not allowed"),
    "isp.RAM_PERMISSION_DENY": Code(FATAL, "the RAM user may not send SMS"),
    "Forbidden.RAM": Code(FATAL, "the RAM user may not send SMS"),
    "SignatureDoesNotMatch": Code(FATAL, "signature refused: check access_key_secret"),
    "IncompleteSignature": Code(FATAL, "signature refused: check access_key_secret"),
    "InvalidAccessKeyId.NotFound": Code(FATAL, "access key not found: check access_key_id"),
    "InvalidAccessKeyId.Inactive": Code(FATAL, "access key disabled"),
    "InvalidTimeStamp.Expired": Code(FATAL, "this machine's clock is off: every request would be refused"),
    "InvalidTimeStamp.Format": Code(FATAL, "this machine's clock is off: every request would be refused"),
}, default=Code(REQUEST, "refused"))
SIGNATURE_CODES = {"SignatureDoesNotMatch", "IncompleteSignature"}
QUERY = "QuerySendDetails"
QUERY_PAGE = 50  # PageSize: at most 50
RECEIPT_LOOKBACK = 30 * 86400  # SendDate: the last 30 days
CHINA = timezone(timedelta(hours=8))  # SendDate and the record times are Beijing time
MIDNIGHT_SLACK = 600  # seconds: a row sent this close to midnight is looked for on both days
SEND_STATUS = {"1": PENDING, "2": FAILED, "3": DELIVERED}  # SendStatus -> sms-cli's status
_STRING_TO_SIGN = re.compile(r"string\s*to\s*sign", re.IGNORECASE)
_LONG_DIGITS = re.compile(r"\d{7,}")


# --- signing (pure, tested against the published examples) -----------------------------------
def percent_encode(s: str) -> str:
    """RFC 3986 over UTF-8: only A-Za-z0-9-_.~ stay as they are."""
    return quote(s, safe="~")


def _encode_pairs(pairs) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)


def canonical_query(params: dict[str, str]) -> str:
    return _encode_pairs(sorted(params.items()))


def string_to_sign(params: dict[str, str], method: str = "POST") -> str:
    """`Signature` itself is never part of what is signed."""
    signed = {k: v for k, v in params.items() if k != "Signature"}
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical_query(signed))}"


def rpc_signature(params: dict[str, str], secret: str, method: str = "POST") -> str:
    digest = hmac.new((secret + "&").encode("utf-8"), string_to_sign(params, method).encode("utf-8"),
                      hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def form_body(params: dict[str, str]) -> bytes:
    """The POST body, encoded exactly as signed so the server's parse matches the signature."""
    return _encode_pairs(params.items()).encode("ascii")


def acs3_canonical_request(method: str, path: str, query: dict[str, str], headers: dict[str, str],
                           payload_sha256: str) -> tuple[str, str]:
    """(canonical request, SignedHeaders) of ACS3: every header given is signed, names
    lower-cased and sorted, values trimmed; query pairs sorted by name and percent-encoded."""
    values: dict[str, list[str]] = {}
    for name, value in headers.items():
        values.setdefault(name.lower(), []).append(str(value).strip())
    names = sorted(values)
    canonical_headers = "".join(f"{n}:{','.join(sorted(values[n]))}\n" for n in names)
    signed = ";".join(names)
    return "\n".join([method.upper(), path or "/", canonical_query(query), canonical_headers, signed,
                      payload_sha256]), signed


def acs3_string_to_sign(canonical_request: str) -> str:
    return f"{ACS3}\n{hashlib.sha256(canonical_request.encode('utf-8')).hexdigest()}"


def acs3_signature(secret: str, string_to_sign: str) -> str:
    return hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def acs3_authorization(key_id: str, secret: str, method: str, path: str, query: dict[str, str],
                       headers: dict[str, str], payload_sha256: str) -> str:
    """The Authorization header of ACS3-HMAC-SHA256 for a request with exactly `headers`."""
    canonical, signed = acs3_canonical_request(method, path, query, headers, payload_sha256)
    signature = acs3_signature(secret, acs3_string_to_sign(canonical))
    return f"{ACS3} Credential={key_id},SignedHeaders={signed},Signature={signature}"


# --- answers ---------------------------------------------------------------------------------
def classify(code: str) -> Kind:
    if code == "OK":
        return Kind.ACCEPTED
    return CLASS_KIND[CODES.lookup(code).cls]


def safe_message(code: str, message: str) -> str:
    """An error message fit for logs and failure files.

    Signature errors echo the string to sign, which holds every phone number of the request.
    """
    if code in SIGNATURE_CODES:
        return "signature refused (check access_key_secret)"
    found = _STRING_TO_SIGN.search(message)
    if found:
        message = message[:found.start()].rstrip(" :.,")
    return _LONG_DIGITS.sub(lambda m: mask_phone(m.group()), message)  # any other echoed number


def read_answer(batch: list[Message], body: bytes) -> list[Outcome]:
    try:
        answer = json.loads(body.decode("utf-8"))
        code = str(answer["Code"])
    except (ValueError, KeyError, TypeError):
        raise RequestFailed(Outcome(Kind.UNKNOWN, "BadResponse", "unreadable response body")) from None
    if code != "OK":
        raise RequestFailed(CODES.outcome(code, safe_message(code, str(answer.get("Message") or "")), request=True))
    return [Outcome(Kind.ACCEPTED, ref=str(answer.get("BizId") or ""))] * len(batch)


def send_status(value) -> str:
    return SEND_STATUS.get(str(value), PENDING)


def _china_time(text) -> float | None:
    """'2019-01-08 16:44:10' (Beijing time) -> unix time; None when empty or unreadable."""
    try:
        return datetime.strptime(str(text), "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA).timestamp()
    except (TypeError, ValueError):
        return None


def read_details(body: bytes) -> tuple[int, list[dict]]:
    """QuerySendDetails' answer -> (TotalCount, the SmsSendDetailDTO records)."""
    try:
        answer = json.loads(body.decode("utf-8"))
        code = str(answer["Code"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise RequestFailed(Outcome(Kind.RETRYABLE, "BadResponse", "unreadable receipt answer")) from None
    if code != "OK":
        raise RequestFailed(CODES.outcome(code, safe_message(code, str(answer.get("Message") or ""))))
    dtos = (answer.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
    try:
        total = int(answer.get("TotalCount") or 0)
    except (TypeError, ValueError):
        total = len(dtos)
    return total, [d for d in dtos if isinstance(d, dict)]


def detail_report(dto: dict, biz_id: str) -> Report:
    """One SmsSendDetailDTO as a Report (the record has no BizId: the one asked for, or "")."""
    wire = str(dto.get("PhoneNum") or "")
    phone = mainland_reading(wire) or "+" + wire.lstrip("+")
    status = send_status(dto.get("SendStatus"))
    code = str(dto.get("ErrCode") or "")
    return Report(biz_id, phone, status, code, code, _china_time(dto.get("ReceiveDate")) if status != PENDING else None,
                  None, str(dto["OutId"]) if dto.get("OutId") else None, str(dto.get("TemplateCode") or "") or None,
                  _china_time(dto.get("SendDate")), raw=str(dto.get("SendStatus", "")))


def _record_id(dto: dict) -> tuple:
    """What tells one record from another in two answers about the same number and day."""
    return tuple(str(dto.get(k) or "") for k in ("PhoneNum", "SendDate", "TemplateCode", "OutId", "Content"))


def wire_phone(msg: Message) -> str:
    """Mainland China as the 11-digit national number, others as country code + number, no +."""
    return msg.national if msg.country_code == 86 else f"{msg.country_code}{msg.national}"


def mainland_reading(wire: str) -> str | None:
    """The +86 number Aliyun takes `wire` for when it has the shape of a mainland mobile
    (11 digits starting with 1) and is a valid one, else None."""
    if len(wire) != 11 or not wire.startswith("1") or not wire.isdigit():
        return None
    number = phonenumbers.parse("+86" + wire, None)
    return "+86" + wire if phonenumbers.is_valid_number(number) else None


class Aliyun(Provider):
    type = "aliyun"
    description = "Alibaba Cloud SendBatchSms, RPC HMAC-SHA1 or ACS3-HMAC-SHA256 signed"
    config_keys = ("access_key_id", "access_key_secret", "sign_name", "signature", "receipt_rate_limit",
                   "report_delay")
    secret_keys = ("access_key_secret",)
    env_defaults = {"access_key_id": "ALIBABA_CLOUD_ACCESS_KEY_ID",
                    "access_key_secret": "ALIBABA_CLOUD_ACCESS_KEY_SECRET"}
    required_keys = ("access_key_id", "access_key_secret")
    default_endpoint = "https://dysmsapi.aliyuncs.com"
    default_rate_limit = 20.0
    max_batch = 100
    codes = CODES
    has_receipts = True
    finds_lost_answers = True  # a number's records of a day can be read without the BizId
    receipt_lookback = RECEIPT_LOOKBACK
    # no documented bound on how late a report may come: the --give-up-after default (receipts.md:
    # three days, as GOV.UK Notify times out pending messages); config report_delay overrides it
    report_delay = 72 * 3600.0
    default_receipt_rate = 5000.0  # QuerySendDetails' documented QPS

    @classmethod
    def check_settings(cls, settings, where):
        if settings.get("signature", "rpc") not in SIGNATURES:
            raise ConfigError(f"{where}.signature: must be 'rpc' (HMAC-SHA1, the default) or 'v3' "
                              f"(ACS3-HMAC-SHA256) (got {settings.get('signature')!r})")

    def __init__(self, settings, templates=None, *, concurrency=4, transport=None):
        super().__init__(settings, templates, concurrency=concurrency, transport=transport)
        self.check_settings(settings, f"provider {settings.name!r}")  # settings built without config.py too
        self.key_id = settings.get("access_key_id")
        self.secret = settings.get("access_key_secret")
        self.sign_name = settings.get("sign_name")
        self.signature = settings.get("signature", "rpc")
        url = urlsplit(self.endpoint or "")
        self.host, self.path = url.netloc, url.path or "/"

    @property
    def action(self) -> str:
        return ACTION

    def batch_key(self, msg: Message) -> Hashable:
        return msg.template_id  # TemplateCode is one per request

    def prepare(self, msg: Message) -> str | None:
        if msg.country_code == 1:
            # SendBatchSms.md: international numbers go as country code + number without "+", so
            # every +1 number is 11 digits starting with 1, the shape of a mainland mobile
            wire = wire_phone(msg)
            mainland = mainland_reading(wire)
            reading = f"Aliyun would read it as the mainland China number {mainland}" if mainland else \
                "Aliyun refuses it as an invalid mainland number"
            return (f"Aliyun cannot take {msg.phone}: on its wire a +1 (US/Canada) number is {wire}, 11 digits "
                    f"starting with 1, the shape of a mainland China mobile ({reading}); send +1 numbers "
                    "through a uspeedo or tencent provider")
        if msg.country_code != 86:
            # any other number whose wire form has that shape is read the same way
            wire = wire_phone(msg)
            mainland = mainland_reading(wire)
            if mainland:
                return (f"Aliyun would read {wire} (the wire form of {msg.phone}) as the mainland "
                        f"China number {mainland}, not this one; send it through another provider "
                        "(uspeedo or tencent)")
        if not (msg.sender_id or self.sign_name):
            return "no sign name (sender_id or sign_name)"
        if isinstance(msg.params, dict):
            msg.params = {str(k): str(v) for k, v in msg.params.items()}
            return None
        if not msg.params:
            msg.params = {}
            return None
        tpl = self.templates.get(msg.template_id)
        if not tpl or not tpl.names:
            return ("Aliyun takes named parameters; positional parameters need the template's "
                    "parameter names in config (templates: ID: params: [names])")
        if len(tpl.names) != len(msg.params):
            return (f"template {msg.template_id} has {len(tpl.names)} parameters "
                    f"({', '.join(tpl.names)}), the row has {len(msg.params)}")
        msg.params = {name: str(value) for name, value in zip(tpl.names, msg.params)}
        return None

    def business_params(self, batch: list[Message]) -> dict[str, str]:
        """SendBatchSms's own parameters (what either signature scheme carries)."""
        params = {
            "PhoneNumberJson": compact_json([wire_phone(m) for m in batch]),
            "SignNameJson": compact_json([m.sender_id or self.sign_name for m in batch]),
            "TemplateCode": batch[0].template_id,
        }
        if any(m.params for m in batch):  # the arrays must line up, so rows without get {}
            params["TemplateParamJson"] = compact_json(
                [dict(m.params) if isinstance(m.params, dict) else {} for m in batch])
        if any(m.extend_code for m in batch):
            params["SmsUpExtendCodeJson"] = compact_json([m.extend_code or "" for m in batch])
        prefixes = {m.key.rpartition("-")[0] for m in batch}
        if len(prefixes) == 1 and "" not in prefixes:  # the input's key prefix: whose message a record is
            params["OutId"] = prefixes.pop()
        return params

    def build_params(self, batch: list[Message], nonce: str, timestamp: str) -> dict[str, str]:
        """RPC: common and business parameters together, signed, for a form-encoded POST."""
        return self._rpc(ACTION, self.business_params(batch), nonce, timestamp)

    def _rpc(self, action: str, business: dict[str, str], nonce: str, timestamp: str) -> dict[str, str]:
        params = {
            "AccessKeyId": self.key_id, "Action": action, "Version": VERSION, "Format": "JSON",
            "RegionId": "cn-hangzhou", "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
            "SignatureNonce": nonce, "Timestamp": timestamp, **business,
        }
        params["Signature"] = rpc_signature(params, self.secret, "POST")
        return params

    def build_v3(self, batch: list[Message], nonce: str, timestamp: str) -> tuple[bytes, dict[str, str]]:
        """ACS3: (body, headers) of a POST whose business parameters are in the form body and
        whose common ones are x-acs-* headers, every header sent signed."""
        return self._v3(ACTION, self.business_params(batch), nonce, timestamp)

    def _v3(self, action: str, business: dict[str, str], nonce: str, timestamp: str) -> tuple[bytes, dict[str, str]]:
        body = form_body(business)
        digest = hashlib.sha256(body).hexdigest()
        headers = {"host": self.host, "content-type": FORM, "x-acs-action": action, "x-acs-version": VERSION,
                   "x-acs-date": timestamp, "x-acs-signature-nonce": nonce, "x-acs-content-sha256": digest}
        headers["Authorization"] = acs3_authorization(self.key_id, self.secret, "POST", self.path, {},
                                                      headers, digest)
        return body, headers

    def _signed(self, action: str, business: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        nonce = str(uuid.uuid4())
        if self.signature == "v3":
            return self._v3(action, business, nonce, timestamp)
        return form_body(self._rpc(action, business, nonce, timestamp)), {"Content-Type": FORM}

    def _send(self, batch: list[Message]) -> list[Outcome]:
        body, headers = self._signed(ACTION, self.business_params(batch))
        resp = self.http.post(self.endpoint, body, headers, action=ACTION, count=len(batch))
        return read_answer(batch, resp.content)  # errors come as HTTP 4xx with a JSON body

    # --- delivery receipts -------------------------------------------------------------------
    def expected_corr(self, row: Sent) -> str | None:
        return row.key.rpartition("-")[0] or None  # OutId: the input's key prefix

    def receipt_pages(self, rows: list[Sent], now: float) -> Iterator[tuple[list[Sent], list[Report]]]:
        groups: dict[tuple[str, str], list[Sent]] = {}
        for r in rows:
            when = datetime.fromtimestamp(r.sent, CHINA)
            days = {when.strftime("%Y%m%d")}
            if (when.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)).timestamp() - r.sent \
                    < MIDNIGHT_SLACK:  # the record may carry the next day's date
                days.add((when + timedelta(days=1)).strftime("%Y%m%d"))
            for day in sorted(days):
                groups.setdefault((r.phone, day), []).append(r)
        for (phone, day), group in groups.items():
            wire = _wire(phone)
            reports: list[Report] = []
            claimed: Counter = Counter()  # records already reported under their BizId
            for biz in dict.fromkeys(r.ref for r in group if r.ref):
                for dto in self._details(wire, day, biz):
                    claimed[_record_id(dto)] += 1
                    reports.append(detail_report(dto, biz))
            if any(not r.ref for r in group):  # a lost answer: every record of the number that day
                for dto in self._details(wire, day, None):
                    rid = _record_id(dto)
                    if claimed[rid]:
                        claimed[rid] -= 1
                        continue
                    reports.append(detail_report(dto, ""))
            yield group, reports

    def _details(self, wire: str, day: str, biz: str | None) -> list[dict]:
        """Every record of `wire` on `day` (of one BizId when given), page by page."""
        out: list[dict] = []
        page = 1
        while True:
            business = {"PhoneNumber": wire, "SendDate": day, "PageSize": str(QUERY_PAGE), "CurrentPage": str(page)}
            if biz:
                business["BizId"] = biz
            body, headers = self._signed(QUERY, business)
            total, dtos = read_details(self._receipt_request("POST", self.endpoint, body=body, headers=headers,
                                                             action=QUERY).content)
            out += dtos
            if not dtos or len(out) >= total or len(dtos) < QUERY_PAGE:
                return out
            page += 1


def _wire(e164: str) -> str:
    """An E.164 number as QuerySendDetails takes it (as SendBatchSms sent it)."""
    number = phonenumbers.parse(e164, None)
    national = phonenumbers.national_significant_number(number)
    return national if number.country_code == 86 else f"{number.country_code}{national}"
