"""Tencent Cloud SendMultiGlobalSms: TC3-signed JSON POST, errors as HTTP 200 Response.Error."""
from __future__ import annotations

import hmac
import re
import time

from ..providers.tencent import ACTION, REGIONS, SERVICE, VERSION, tc3_signature
from .server import Dialect, Reply, Request

MAX_NUMBERS = 200
_AUTH = re.compile(r"TC3-HMAC-SHA256 Credential=([^/,\s]+)/([^,\s]+), SignedHeaders=([^,\s]+), Signature=([0-9a-f]+)")
_E164 = re.compile(r"\+[1-9]\d{5,14}")


class TencentDialect(Dialect):
    name = "tencent"

    def matches(self, req: Request) -> bool:
        return "x-tc-action" in req.headers

    def _error(self, code: str, message: str) -> Reply:
        return Reply.json(200, {"Response": {"Error": {"Code": code, "Message": message},
                                             "RequestId": self.emu.new_id()}})

    def throttled(self, req: Request) -> Reply:
        return self._error("RequestLimitExceeded", "Your current request times exceeds the limit.")

    def handle(self, req: Request) -> Reply:
        refused = self._check_envelope(req)
        if refused is not None:
            return refused
        try:
            body = req.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._error("FailedOperation.FailResolvePacket", "request body is not a JSON object")
        if not body.get("SmsSdkAppId"):
            return self._error("InvalidParameterValue.SdkAppIdNotExist", "SmsSdkAppId missing")
        items = body.get("MultiSmsInfoSet")
        if not isinstance(items, list) or not items:
            return self._error("InvalidParameterValue.MultiSmsInfoSetEmpty", "MultiSmsInfoSet is empty")
        if len(items) > MAX_NUMBERS:
            return self._error("LimitExceeded.PhoneNumberCountLimit",
                               f"{len(items)} numbers in one request; at most {MAX_NUMBERS}")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("PhoneNumber"), str) \
                    or not item.get("TemplateId"):
                return self._error("FailedOperation.FailResolvePacket", "PhoneNumber and TemplateId required")
            params = item.get("TemplateParamSet", [])
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return self._error("FailedOperation.FailResolvePacket", "TemplateParamSet must be an array of strings")
            if item["PhoneNumber"].startswith("+86"):
                return self._error("UnsupportedOperation.ContainDomesticPhoneNumber",
                                   "the request contains Chinese Mainland phone numbers")
        statuses, accepted = [], []
        for item in items:
            status, entry = self._one(item)
            statuses.append(status)
            if entry:
                accepted.append(entry)
        return Reply.json(200, {"Response": {"SendMultiStatusSet": statuses, "RequestId": self.emu.new_id()}},
                          accepted)

    def _check_envelope(self, req: Request) -> Reply | None:
        """Action, version, region, clock and TC3 signature; a Reply when refused."""
        h = req.headers
        if h.get("x-tc-action") != ACTION:
            return self._error("InvalidAction", f"action {h.get('x-tc-action')!r} not found")
        if h.get("x-tc-version") != VERSION:
            return self._error("NoSuchVersion", f"version {h.get('x-tc-version')!r} not found")
        if h.get("x-tc-region") not in REGIONS:
            return self._error("UnsupportedOperation.UnsupportedRegion", "region not supported")
        try:
            timestamp = int(h.get("x-tc-timestamp", ""))
        except ValueError:
            return self._error("AuthFailure.InvalidAuthorization", "X-TC-Timestamp missing or not a number")
        if abs(time.time() - timestamp) > 300:
            return self._error("AuthFailure.SignatureExpire", "signature expired: timestamp too far from server time")
        found = _AUTH.fullmatch(h.get("authorization", ""))
        if not found:
            return self._error("AuthFailure.InvalidAuthorization", "Authorization header malformed")
        opts = self.emu.options
        if found.group(1) != opts.key_id:
            return self._error("AuthFailure.SecretIdNotFound", "SecretId not found")
        expected, _ = tc3_signature(opts.key_id, opts.key_secret, SERVICE, h.get("host", ""),
                                    h.get("content-type", ""), req.body, timestamp)
        # the whole header compared: credential scope (date, service) and signed headers too
        if not hmac.compare_digest(h["authorization"], expected):
            return self._error("AuthFailure.SignatureFailure",
                               "The provided credentials could not be validated. Please check your signature is correct.")
        return None

    def _one(self, item: dict) -> tuple[dict, dict | None]:
        phone = item["PhoneNumber"]
        status = {"PhoneNumber": phone, "SerialNo": self.emu.new_id(),
                  "SessionContext": item.get("SessionContext", ""), "Fee": 0}
        if not _E164.fullmatch(phone):
            return {**status, "Code": "InvalidParameterValue.IncorrectPhoneNumber",
                    "Message": "incorrect mobile number format"}, None
        if self.emu.is_blacklisted(phone[1:]):
            return {**status, "Code": "FailedOperation.PhoneNumberInBlacklist",
                    "Message": "the mobile number is in the opt-out list"}, None
        status.update(Code="Ok", Message="send success", Fee=1)
        entry = {"phone": phone, "template_id": item["TemplateId"], "params": item.get("TemplateParamSet", []),
                 "sender_id": item.get("SenderId"), "user_id": item.get("SessionContext"),
                 "ref": status["SerialNo"]}
        return status, entry

