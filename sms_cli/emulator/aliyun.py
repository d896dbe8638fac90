"""Alibaba Cloud SendBatchSms at "/": RPC HMAC-SHA1 (parameters in the query, a form body or
both; GET or POST) and ACS3-HMAC-SHA256 (x-acs-* headers, parameters in the query and/or a form
body). One code for the whole request; envelope errors as HTTP 4xx, business errors as HTTP 200.

Delivery receipts: QuerySendDetails (signed either way), one number's records of one day (Beijing
time, the last 30 days), optionally of one BizId, `PageSize` 1-50 by `CurrentPage`; a record's
SendStatus is 1 (waiting for the receipt) until the simulated delivery is done, then 3 or 2.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import datetime, timedelta, timezone

import phonenumbers

from ..providers.aliyun import (ACS3, ACTION, CHINA, QUERY, VERSION, acs3_canonical_request,
    acs3_signature, acs3_string_to_sign, mainland_reading, rpc_signature, string_to_sign)
from ..validate.validator import render
from .wire import FORM, Delivery, Dialect, Reply, Request, possible_e164

MAX_NUMBERS = 100
MAX_PAGE = 50  # QuerySendDetails PageSize
LOOKBACK_DAYS = 30
CLOCK_SKEW = 900  # seconds
_ACS3_AUTH = re.compile(r"(ACS3-[A-Z0-9-]+) Credential=([^,\s]+),SignedHeaders=([a-z0-9;._-]+),"
                        r"Signature=([0-9a-fA-F]+)")
_REQUIRED = ("PhoneNumberJson", "SignNameJson", "TemplateCode")


def _error(status: int, code: str, message: str, request_id: str) -> Reply:
    return Reply.json(status, {"Code": code, "Message": message, "RequestId": request_id})


def _json_array(value: str | None) -> list | None:
    try:
        parsed = json.loads(value) if value is not None else None
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, list) else None


def e164(number) -> str | None:
    """Aliyun wire number -> E.164, the way Aliyun reads it: 11 digits starting with 1 are a
    mainland China mobile when that is a valid number, anything else is country code + number.
    None when neither reading is a valid number."""
    if not isinstance(number, str) or not (number.isascii() and number.isdigit()):
        return None
    return mainland_reading(number) or ("+" + number if possible_e164("+" + number) else None)


class AliyunDialect(Dialect):
    name = "aliyun"

    def __init__(self, emulator):
        super().__init__(emulator)
        self.nonces: dict[str, float] = {}  # nonce -> when seen, for the replay window

    def matches(self, req: Request) -> bool:
        if req.path not in ("/", ""):
            return False
        h = req.headers
        return (h.get("authorization", "").startswith("ACS3-") or "x-acs-action" in h
                or "AccessKeyId" in req.params or "Signature" in req.params
                or h.get("content-type", "").lower().startswith(FORM))

    def throttled(self, req: Request) -> Reply:
        return _error(400, "Throttling.User", "Request was denied due to user flow control.", self.emu.new_id())

    def malformed(self, req: Request, message: str) -> Reply:
        return _error(400, "InvalidParameter", message, self.emu.new_id().upper())

    def server_error(self, req: Request) -> Reply:
        return _error(200, "isp.SYSTEM_ERROR", "System error.", self.emu.new_id().upper())

    def handle(self, req: Request) -> Reply:
        rid = self.emu.new_id().upper()
        req.form  # a body that is not a readable form is a 400 (raises BadRequest)
        if req.headers.get("authorization", "").startswith("ACS3-"):
            refused = self._check_acs3(req, rid)
        else:
            refused = self._check_rpc(req, rid)
        if refused is not None:
            return refused
        if (req.params.get("Action") or req.headers.get("x-acs-action")) == QUERY:
            return self._query(req.params, rid)
        return self._send(req.params, rid)

    # --- the envelope ----------------------------------------------------------------------
    def _check_rpc(self, req: Request, rid: str) -> Reply | None:
        """Key, signature, action, version, clock and nonce of an RPC request; a Reply when refused."""
        params, opts = req.params, self.emu.options
        if params.get("AccessKeyId") != opts.key_id:
            return _error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.", rid)
        if not params.get("Signature"):
            return _error(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.", rid)
        if params.get("SignatureMethod", "HMAC-SHA1") != "HMAC-SHA1":
            return _error(400, "IncompleteSignature",
                          f"SignatureMethod {params.get('SignatureMethod')} is not supported (HMAC-SHA1).", rid)
        if not hmac.compare_digest(params["Signature"].encode(), rpc_signature(params, opts.key_secret, req.method).encode()):
            # echoes the string to sign as the real service does: it holds the phone numbers
            return _error(400, "SignatureDoesNotMatch",
                          "Specified signature is not matched with our calculation. server string to sign is:"
                          + string_to_sign(params, req.method), rid)
        return self._check_call(params.get("Action"), params.get("Version"), params.get("Timestamp"),
                                params.get("SignatureNonce"), rid)

    def _check_acs3(self, req: Request, rid: str) -> Reply | None:
        """Key, content hash, signed headers, signature, action, version, clock and nonce of an
        ACS3-HMAC-SHA256 request; a Reply when refused."""
        h, opts = req.headers, self.emu.options
        found = _ACS3_AUTH.fullmatch(h["authorization"].strip())
        if not found:
            return _error(400, "IncompleteSignature", "The Authorization header is malformed.", rid)
        algorithm, key_id, signed_headers, signature = found.groups()
        if algorithm != ACS3:
            return _error(400, "IncompleteSignature", f"Signature algorithm {algorithm} is not supported ({ACS3}).", rid)
        if key_id != opts.key_id:
            return _error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.", rid)
        digest = hashlib.sha256(req.body).hexdigest()
        if h.get("x-acs-content-sha256", "").lower() != digest:
            return _error(400, "SignatureDoesNotMatch", "x-acs-content-sha256 is not the SHA-256 of the body.", rid)
        signed = signed_headers.split(";")
        unsigned = [n for n in ("host", *sorted(k for k in h if k.startswith("x-acs-"))) if n not in signed]
        if "content-type" in h and "content-type" not in signed:
            unsigned.append("content-type")
        if unsigned:
            return _error(400, "IncompleteSignature", f"Header {unsigned[0]} must be signed.", rid)
        canonical, _ = acs3_canonical_request(req.method, req.path or "/", req.query,
                                              {n: h.get(n, "") for n in signed}, h["x-acs-content-sha256"])
        to_sign = acs3_string_to_sign(canonical)
        if not hmac.compare_digest(signature.lower().encode(), acs3_signature(opts.key_secret, to_sign).encode()):
            return _error(400, "SignatureDoesNotMatch",
                          "Specified signature is not matched with our calculation. server string to sign is:"
                          + to_sign, rid)
        return self._check_call(h.get("x-acs-action"), h.get("x-acs-version"), h.get("x-acs-date"),
                                h.get("x-acs-signature-nonce"), rid)

    def _check_call(self, action, version, timestamp, nonce, rid: str) -> Reply | None:
        if action not in (ACTION, QUERY):
            return _error(404, "InvalidAction.NotFound", f"Specified api is not found: {action}", rid)
        if version != VERSION:
            return _error(400, "InvalidVersion", f"Specified version is not valid: {version}", rid)
        try:
            when = datetime.strptime(timestamp or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return _error(400, "InvalidTimeStamp.Format", "Specified time stamp is not valid.", rid)
        now = time.time()
        if abs(now - when.timestamp()) > CLOCK_SKEW:
            return _error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", rid)
        with self.emu.lock:
            used = not nonce or nonce in self.nonces
            self.nonces[nonce or ""] = now
            if len(self.nonces) > 100_000:  # a nonce older than the clock window cannot come back
                self.nonces = {n: t for n, t in self.nonces.items() if now - t <= 2 * CLOCK_SKEW}
        if used:
            return _error(400, "SignatureNonceUsed", "Specified signature nonce was used already.", rid)
        return None

    # --- SendBatchSms --------------------------------------------------------------------------
    def _send(self, params: dict[str, str], rid: str) -> Reply:
        for name in _REQUIRED:
            if name not in params:
                return _error(400, f"Missing{name}", f"{name} is mandatory for this action.", rid)
        phones = _json_array(params["PhoneNumberJson"])
        signs = _json_array(params["SignNameJson"])
        has_params = "TemplateParamJson" in params
        values = _json_array(params["TemplateParamJson"]) if has_params else [{}] * len(phones or [])
        if phones is not None and len(phones) > MAX_NUMBERS:
            return _error(200, "isv.MOBILE_COUNT_OVER_LIMIT", f"at most {MAX_NUMBERS} numbers a request", rid)
        if not phones or signs is None or values is None or not len(phones) == len(signs) == len(values):
            return _error(200, "isv.INVALID_JSON_PARAM",
                          "PhoneNumberJson, SignNameJson and TemplateParamJson must be JSON arrays of equal length", rid)
        if not all(isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) for v in values):
            return _error(200, "isv.INVALID_JSON_PARAM", "TemplateParamJson items must be objects of strings", rid)
        extend = _json_array(params["SmsUpExtendCodeJson"]) if "SmsUpExtendCodeJson" in params else None
        if "SmsUpExtendCodeJson" in params and (extend is None or len(extend) != len(phones)
                                                or not all(isinstance(x, str) for x in extend)):
            return _error(200, "isv.INVALID_JSON_PARAM",
                          "SmsUpExtendCodeJson must be a JSON array of strings, one per number", rid)
        if not all(isinstance(s, str) and s for s in signs):
            return _error(200, "isv.SMS_SIGNATURE_ILLEGAL", "sign name missing", rid)
        template = params["TemplateCode"]
        if not template:
            return _error(200, "isv.SMS_TEMPLATE_ILLEGAL", "TemplateCode is empty", rid)
        for value in values:
            problem = self.emu.template_problem(template, value)
            if problem:
                code = "isv.SMS_TEMPLATE_ILLEGAL" if problem[0] == "unknown" else "isv.TEMPLATE_MISSING_PARAMETERS"
                return _error(200, code, problem[1], rid)
        numbers = [e164(p) for p in phones]
        if not all(numbers):
            bad = next(p for p, n in zip(phones, numbers) if not n)
            return _error(200, "isv.MOBILE_NUMBER_ILLEGAL", f"invalid mobile number {bad}", rid)
        # an opted-out (--blacklist) number is not refused: it is taken and its receipt fails
        if any(self.emu.blocked(v) for v in values):  # content control: the whole request, all or nothing
            return _error(200, "isv.BLACK_KEY_CONTROL_LIMIT", "template variable content is on the black key list",
                          rid)
        if self.emu.reserve(self.name, len(numbers), whole=True) < len(numbers):
            return _error(200, "isv.DAY_LIMIT_CONTROL", "the daily limit of the account was reached", rid)
        with self.emu.lock:  # the seeded rng is shared with the fault injection
            biz_id = f"{self.emu.rng.randrange(10**17, 10**18)}^0"
        accepted = [{"phone": n, "template_id": template, "params": v, "sender_id": s,
                     "user_id": params.get("OutId") or None, "ref": biz_id}
                    for n, s, v in zip(numbers, signs, values)]
        return Reply.json(200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": rid}, accepted)

    # --- QuerySendDetails ----------------------------------------------------------------------
    def _query(self, params: dict[str, str], rid: str) -> Reply:
        self.emu.receipt_request()
        for name in ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"):
            if not params.get(name):
                return _error(400, f"Missing{name}", f"{name} is mandatory for this action.", rid)
        phone = e164(params["PhoneNumber"])
        if phone is None:
            return _error(200, "isv.MOBILE_NUMBER_ILLEGAL", f"invalid mobile number {params['PhoneNumber']}", rid)
        try:
            day = datetime.strptime(params["SendDate"], "%Y%m%d").date()
        except ValueError:
            return _error(200, "isv.INVALID_PARAMETERS", "SendDate must be yyyyMMdd", rid)
        today = datetime.now(CHINA).date()
        if not today - timedelta(days=LOOKBACK_DAYS) <= day <= today:
            return _error(200, "isv.INVALID_PARAMETERS", f"SendDate: only the last {LOOKBACK_DAYS} days", rid)
        size, page = params["PageSize"], params["CurrentPage"]
        if not (size.isdigit() and 1 <= int(size) <= MAX_PAGE and page.isdigit() and int(page) >= 1):
            return _error(200, "isv.INVALID_PARAMETERS", f"PageSize must be 1-{MAX_PAGE}, CurrentPage from 1", rid)
        biz = params.get("BizId") or None
        found = [d for d in self.emu.deliveries_to(self.name, phone[1:])
                 if datetime.fromtimestamp(float(d.entry["ts"]), CHINA).date() == day
                 and (biz is None or d.entry.get("ref") == biz)]
        size_n, page_n = int(size), int(page)
        now = time.time()
        dtos = [self._detail(d, now) for d in found[(page_n - 1) * size_n: page_n * size_n]]
        return Reply.json(200, {"Code": "OK", "Message": "OK", "RequestId": rid, "TotalCount": len(found),
                                "SmsSendDetailDTOs": {"SmsSendDetailDTO": dtos}})

    def _detail(self, d: Delivery, now: float) -> dict:
        number = phonenumbers.parse(d.phone, None)
        national = phonenumbers.national_significant_number(number)
        ready = d.ready(now)
        stamp = "%Y-%m-%d %H:%M:%S"
        return {"PhoneNum": national if number.country_code == 86 else f"{number.country_code}{national}",
                "SendStatus": (3 if d.delivered else 2) if ready else 1,
                "ErrCode": ("DELIVERED" if d.delivered else d.code) if ready else "",
                "TemplateCode": d.entry.get("template_id") or "", "Content": self._content(d),
                "SendDate": datetime.fromtimestamp(float(d.entry["ts"]), CHINA).strftime(stamp),
                "ReceiveDate": datetime.fromtimestamp(d.at, CHINA).strftime(stamp) if ready else "",
                "OutId": d.entry.get("user_id") or ""}

    def _content(self, d: Delivery) -> str:
        """The text as sent, when --templates gave the template's text."""
        tpl = (self.emu.templates or {}).get(d.entry.get("template_id") or "")
        if tpl is None or tpl.text is None:
            return ""
        try:
            return render(tpl, d.entry.get("params") or {})
        except (ValueError, TypeError):
            return ""
