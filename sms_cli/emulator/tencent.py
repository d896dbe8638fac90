"""Tencent Cloud SendMultiGlobalSms (2021-01-11) at "/": TC3-HMAC-SHA256 (POST with a JSON or
form body, GET with the parameters in the query) and the older HmacSHA256 / HmacSHA1 signature
(every parameter, flattened as `MultiSmsInfoSet.0.PhoneNumber`, in a form body or the query).
Every answer is HTTP 200: errors are `Response.Error`, per-number results `SendMultiStatusSet`.

Delivery receipts, signed the same ways: PullSmsSendStatus (a pull-once queue of the reports that
are in, `Limit` at most 100) and PullSmsSendStatusByPhoneNumber (one number's reports received
from `BeginTime`, at most 7 days back, to `EndTime`; `Offset` must be 0), both answered with
`PullSmsSendStatusSet`. A report exists once the simulated delivery is done.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from datetime import datetime, timezone

import phonenumbers

from ..providers.tencent import ACTION, ALGORITHM, PULL, PULL_BY_PHONE, REGIONS, SERVICE, VERSION
from .wire import FORM, MAX_DEPTH, BadRequest, Delivery, Dialect, Reply, Request, parse_e164

MAX_NUMBERS = 200
ACTIONS = (ACTION, PULL, PULL_BY_PHONE)
MAX_REPORTS = 100  # Limit of both receipt actions
LOOKBACK = 7 * 86400  # PullSmsSendStatusByPhoneNumber: BeginTime within the last 7 days
CLOCK_SKEW = 300  # seconds
_AUTH = re.compile(r"TC3-HMAC-SHA256 Credential=([^/,\s]+)/(\d{4}-\d{2}-\d{2})/([a-z0-9]+)/tc3_request, "
                   r"SignedHeaders=([a-z0-9;._-]+), Signature=([0-9a-f]{64})")
_V1_METHODS = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1}
# parameters of the old signature's envelope, not of SendMultiGlobalSms
_V1_COMMON = {"Action", "Version", "Region", "Timestamp", "Nonce", "SecretId", "Signature", "SignatureMethod",
              "RequestClient", "Token", "Language"}
SIGNATURE_FAILURE = "The provided credentials could not be validated. Please check your signature is correct."


def unflatten(params: dict[str, str]) -> dict:
    """`{"A.0.B": "x"}` -> `{"A": [{"B": "x"}]}`: the flattened form of the older signature,
    of form bodies and of GET queries."""
    root: dict = {}
    for key, value in params.items():
        parts = key.split(".")
        if len(parts) > MAX_DEPTH:
            raise BadRequest(f"parameter name {key[:60]!r} nested deeper than {MAX_DEPTH} levels")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise BadRequest(f"parameter {key} conflicts with another parameter")
        if parts[-1] in node:
            raise BadRequest(f"parameter {key} conflicts with another parameter")
        node[parts[-1]] = value
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    node = {k: _lists(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        if sorted(int(k) for k in node) != list(range(len(node))):
            raise BadRequest("array indexes must run from 0 without gaps")
        return [node[k] for k in sorted(node, key=int)]
    return node


class TencentDialect(Dialect):
    name = "tencent"

    def matches(self, req: Request) -> bool:
        return req.path in ("/", "") and ("x-tc-action" in req.headers or "SecretId" in req.params)

    def _error(self, code: str, message: str, status: int = 200) -> Reply:
        return Reply.json(status, {"Response": {"Error": {"Code": code, "Message": message},
                                                "RequestId": self.emu.new_id()}})

    def throttled(self, req: Request) -> Reply:
        return self._error("RequestLimitExceeded", "Your current request times exceeds the limit.")

    def server_error(self, req: Request) -> Reply:
        return self._error("InternalError.Timeout", "The request to deliver an SMS message timed out.")

    def malformed(self, req: Request, message: str) -> Reply:
        return self._error("FailedOperation.FailResolvePacket", message, 400)

    def handle(self, req: Request) -> Reply:
        if "x-tc-action" in req.headers:
            refused = self._check_tc3(req)
            body = None if refused else self._tc3_body(req)
        else:
            refused = self._check_v1(req)
            body = None if refused else unflatten({k: v for k, v in req.params.items() if k not in _V1_COMMON})
        if refused is not None:
            return refused
        if not isinstance(body, dict):
            raise BadRequest("request body is not a JSON object")
        action = req.headers.get("x-tc-action") or req.params.get("Action")
        if action == PULL:
            return self._pull(body)
        if action == PULL_BY_PHONE:
            return self._pull_by_phone(body)
        return self._send(body)

    # --- the envelope ----------------------------------------------------------------------
    def _check_call(self, action, version, region, timestamp) -> Reply | None:
        if action not in ACTIONS:
            return self._error("InvalidAction", f"action {action!r} not found")
        if version != VERSION:
            return self._error("NoSuchVersion", f"version {version!r} not found")
        if region not in REGIONS:
            return self._error("UnsupportedOperation.UnsupportedRegion", "region not supported")
        try:
            stamp = int(timestamp or "")
        except ValueError:
            return self._error("AuthFailure.InvalidAuthorization", "Timestamp missing or not a number")
        if abs(time.time() - stamp) > CLOCK_SKEW:
            return self._error("AuthFailure.SignatureExpire", "signature expired: timestamp too far from server time")
        return None

    def _check_tc3(self, req: Request) -> Reply | None:
        """Action, version, region, clock and TC3 signature; a Reply when refused."""
        h = req.headers
        refused = self._check_call(h.get("x-tc-action"), h.get("x-tc-version"), h.get("x-tc-region"),
                                   h.get("x-tc-timestamp"))
        if refused:
            return refused
        found = _AUTH.fullmatch(h.get("authorization", "").strip())
        if not found:
            return self._error("AuthFailure.InvalidAuthorization", "Authorization header malformed")
        secret_id, date, service, signed_headers, signature = found.groups()
        opts = self.emu.options
        if secret_id != opts.key_id:
            return self._error("AuthFailure.SecretIdNotFound", "SecretId not found")
        signed = signed_headers.split(";")
        if "content-type" not in signed or "host" not in signed:
            return self._error("AuthFailure.InvalidAuthorization", "content-type and host must be signed")
        timestamp = int(h["x-tc-timestamp"])
        if date != datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d") or service != SERVICE:
            return self._error("AuthFailure.SignatureFailure", SIGNATURE_FAILURE)
        payload = b"" if req.method == "GET" else req.body  # a GET signs its query, not a body
        if h.get("x-tc-content-sha256") == "UNSIGNED-PAYLOAD":
            payload = b"UNSIGNED-PAYLOAD"
        canonical = "\n".join([
            req.method, req.path or "/", req.raw_query if req.method == "GET" else "",
            "".join(f"{n}:{h.get(n, '').strip().lower()}\n" for n in signed), signed_headers,
            hashlib.sha256(payload).hexdigest(),
        ])
        string_to_sign = "\n".join([ALGORITHM, str(timestamp), f"{date}/{service}/tc3_request",
                                    hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
        key = _hmac(("TC3" + opts.key_secret).encode("utf-8"), date)
        key = _hmac(_hmac(key, service), "tc3_request")
        expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            return self._error("AuthFailure.SignatureFailure", SIGNATURE_FAILURE)
        return None

    def _tc3_body(self, req: Request) -> dict:
        if req.method == "GET":
            return unflatten(req.query)
        content_type = req.headers.get("content-type", "").lower()
        if content_type.startswith(FORM):
            return unflatten(req.form)
        if content_type.startswith("application/json"):
            return req.json()
        raise BadRequest(f"Content-Type {content_type or 'missing'}: send application/json")

    def _check_v1(self, req: Request) -> Reply | None:
        """The older signature: HMAC of `METHODhost/path?k=v&...` over every parameter."""
        p = req.params
        refused = self._check_call(p.get("Action"), p.get("Version"), p.get("Region"), p.get("Timestamp"))
        if refused:
            return refused
        opts = self.emu.options
        if p.get("SecretId") != opts.key_id:
            return self._error("AuthFailure.SecretIdNotFound", "SecretId not found")
        if not p.get("Nonce"):
            return self._error("MissingParameter", "The request is missing a required parameter `Nonce`.")
        digest = _V1_METHODS.get(p.get("SignatureMethod", "HmacSHA1"))
        if digest is None:
            return self._error("AuthFailure.InvalidAuthorization", "SignatureMethod must be HmacSHA256 or HmacSHA1")
        signed = {k.replace("_", "."): v for k, v in p.items() if k != "Signature"}
        text = (f"{req.method}{req.headers.get('host', '')}{req.path or '/'}?"
                + "&".join(f"{k}={signed[k]}" for k in sorted(signed)))
        expected = base64.b64encode(hmac.new(opts.key_secret.encode("utf-8"), text.encode("utf-8"), digest).digest())
        if not hmac.compare_digest(p.get("Signature", "").encode("utf-8"), expected):
            return self._error("AuthFailure.SignatureFailure", SIGNATURE_FAILURE)
        return None

    # --- PullSmsSendStatus, PullSmsSendStatusByPhoneNumber ------------------------------------
    def _int(self, body: dict, name: str, required: bool = True) -> int | Reply | None:
        """An integer parameter (a JSON number, or digits in a form or query)."""
        value = body.get(name)
        if value is None:
            if required:
                return self._error("MissingParameter", f"The request is missing a required parameter `{name}`.")
            return None
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            return self._error("InvalidParameter", f"`{name}` must be an integer")
        return int(value)

    def _app_and_limit(self, body: dict) -> tuple[str, int] | Reply:
        app_id = body.get("SmsSdkAppId")
        if app_id is None:
            return self._error("MissingParameter", "The request is missing a required parameter `SmsSdkAppId`.")
        if not isinstance(app_id, str) or not app_id:
            return self._error("InvalidParameterValue.SdkAppIdNotExist", "SmsSdkAppId does not exist")
        limit = self._int(body, "Limit")
        if isinstance(limit, Reply):
            return limit
        if not 1 <= limit <= MAX_REPORTS:
            return self._error("InvalidParameterValue", f"Limit must be from 1 to {MAX_REPORTS}")
        return app_id, limit

    def _pull(self, body: dict) -> Reply:
        self.emu.receipt_request()
        checked = self._app_and_limit(body)
        if isinstance(checked, Reply):
            return checked
        reports = self.emu.pull_deliveries(self.name, checked[1], time.time())
        return self._reports(reports)

    def _pull_by_phone(self, body: dict) -> Reply:
        self.emu.receipt_request()
        checked = self._app_and_limit(body)
        if isinstance(checked, Reply):
            return checked
        values = {}
        for name, required in (("BeginTime", True), ("Offset", True), ("EndTime", False)):
            value = self._int(body, name, required)
            if isinstance(value, Reply):
                return value
            values[name] = value
        now = time.time()
        if values["Offset"] != 0:
            return self._error("InvalidParameterValue", "Offset must be 0")
        if values["BeginTime"] < now - LOOKBACK:
            return self._error("InvalidParameterValue", "BeginTime: only reports of the last 7 days can be pulled")
        phone = body.get("PhoneNumber")
        if phone is None:
            return self._error("MissingParameter", "The request is missing a required parameter `PhoneNumber`.")
        if not isinstance(phone, str) or parse_e164(phone) is None:
            return self._error("InvalidParameterValue.IncorrectPhoneNumber", "incorrect mobile number format")
        end = values["EndTime"] if values["EndTime"] is not None else now
        reports = [d for d in self.emu.deliveries_to(self.name, phone[1:])
                   if d.ready(now) and values["BeginTime"] <= d.at <= end + 1]
        return self._reports(sorted(reports, key=lambda d: d.at)[:checked[1]])

    def _reports(self, deliveries: list[Delivery]) -> Reply:
        out = []
        for d in deliveries:
            number = parse_e164(d.phone)
            out.append({"UserReceiveTime": int(d.at), "CountryCode": str(number.country_code) if number else "",
                        "SubscriberNumber": phonenumbers.national_significant_number(number) if number else "",
                        "PhoneNumber": d.phone, "SerialNo": str(d.entry.get("ref") or ""),
                        "ReportStatus": "SUCCESS" if d.delivered else "FAIL", "Description": d.code,
                        "SessionContext": d.entry.get("user_id") or ""})
        return Reply.json(200, {"Response": {"PullSmsSendStatusSet": out, "RequestId": self.emu.new_id()}})

    # --- SendMultiGlobalSms ----------------------------------------------------------------
    def _send(self, body: dict) -> Reply:
        app_id = body.get("SmsSdkAppId")
        items = body.get("MultiSmsInfoSet")
        for name, value in (("SmsSdkAppId", app_id), ("MultiSmsInfoSet", items)):
            if value is None:
                return self._error("MissingParameter", f"The request is missing a required parameter `{name}`.")
        if not isinstance(app_id, str) or not app_id:
            return self._error("InvalidParameterValue.SdkAppIdNotExist", "SmsSdkAppId does not exist")
        if not isinstance(items, list):
            return self._error("FailedOperation.FailResolvePacket", "MultiSmsInfoSet must be an array")
        if not items:
            return self._error("InvalidParameterValue.MultiSmsInfoSetEmpty", "MultiSmsInfoSet is empty")
        if len(items) > MAX_NUMBERS:
            return self._error("LimitExceeded.PhoneNumberCountLimit",
                               f"{len(items)} numbers in one request; at most {MAX_NUMBERS}")
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                return self._error("FailedOperation.FailResolvePacket", f"MultiSmsInfoSet.{n} must be an object")
            for name in ("PhoneNumber", "TemplateId"):
                if item.get(name) is None:
                    return self._error("MissingParameter",
                                       f"The request is missing a required parameter `MultiSmsInfoSet.{n}.{name}`.")
            if not all(isinstance(item.get(k, ""), str) for k in ("PhoneNumber", "TemplateId", "SenderId", "SessionContext")):
                return self._error("FailedOperation.FailResolvePacket", f"MultiSmsInfoSet.{n}: fields must be strings")
            params = item.get("TemplateParamSet", [])
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return self._error("FailedOperation.FailResolvePacket", "TemplateParamSet must be an array of strings")
            if len(item.get("SessionContext", "").encode("utf-8")) >= 512:
                return self._error("InvalidParameterValue", f"MultiSmsInfoSet.{n}.SessionContext must be "
                                                            "under 512 bytes")
            number = parse_e164(item["PhoneNumber"])
            if number is not None and number.country_code == 86:
                return self._error("UnsupportedOperation.ContainDomesticPhoneNumber",
                                   "the request contains Chinese Mainland phone numbers")
        statuses, accepted = [], []
        for item in items:
            status, entry = self._one(item)
            if entry and not self.emu.reserve(self.name, 1, whole=True):  # the account's daily limit, per number
                status, entry = {**status, "Code": "LimitExceeded.DailyLimit", "Fee": 0,
                                 "Message": "the daily limit of Global SMS was reached"}, None
            statuses.append(status)
            if entry:
                accepted.append(entry)
        return Reply.json(200, {"Response": {"SendMultiStatusSet": statuses, "RequestId": self.emu.new_id()}},
                          accepted)

    def _one(self, item: dict) -> tuple[dict, dict | None]:
        phone, template = item["PhoneNumber"], item["TemplateId"]
        params = item.get("TemplateParamSet") or []
        number = parse_e164(phone)
        region = phonenumbers.region_code_for_number(number) if number else None
        status = {"SerialNo": self.emu.new_id(), "PhoneNumber": phone, "Fee": 0,
                  "SessionContext": item.get("SessionContext", ""), "Code": "", "Message": "",
                  "IsoCode": region if region and region != "ZZ" else "DEF"}
        problem = self.emu.template_problem(template, params)
        if number is None:
            return {**status, "Code": "InvalidParameterValue.IncorrectPhoneNumber",
                    "Message": "incorrect mobile number format"}, None
        if problem and problem[0] == "unknown":
            return {**status, "Code": "FailedOperation.TemplateUnapprovedOrNotExist",
                    "Message": "template is not approved or does not exist"}, None
        if problem:
            return {**status, "Code": "FailedOperation.TemplateIncorrectOrUnapproved",
                    "Message": "template is not approved or request content does not match the approved "
                               "template content"}, None
        if self.emu.is_blacklisted(phone[1:]):
            return {**status, "Code": "FailedOperation.PhoneNumberInBlacklist",
                    "Message": "the mobile number is in the opt-out list"}, None
        if self.emu.blocked(params):
            return {**status, "Code": "FailedOperation.ContainSensitiveWord",
                    "Message": "the SMS message contains sensitive words"}, None
        status.update(Code="Ok", Message="send success", Fee=self.emu.parts(template, params))
        entry = {"phone": phone, "template_id": template, "params": params,
                 "sender_id": item.get("SenderId"), "user_id": item.get("SessionContext"),
                 "ref": status["SerialNo"]}
        return status, entry


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()
