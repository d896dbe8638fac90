"""Alibaba Cloud SendBatchSms: RPC-signed form POST to "/", one code for the whole request."""
from __future__ import annotations

import hmac
import json
import time
from datetime import datetime, timezone
from urllib.parse import parse_qsl

from ..providers.aliyun import ACTION, FORM, VERSION, rpc_signature, string_to_sign
from .server import Dialect, Reply, Request

MAX_NUMBERS = 100


def _error(status: int, code: str, message: str, request_id: str) -> Reply:
    return Reply.json(status, {"Code": code, "Message": message, "RequestId": request_id})


def _json_array(value: str | None) -> list | None:
    try:
        parsed = json.loads(value) if value is not None else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, list) else None


def _e164(number: str) -> str:
    """Aliyun wire number -> +digits: 11 digits starting with 1 are mainland China."""
    return "+86" + number if len(number) == 11 and number.startswith("1") else "+" + number


class AliyunDialect(Dialect):
    name = "aliyun"

    def __init__(self, emulator):
        super().__init__(emulator)
        self.nonces: set[str] = set()

    def matches(self, req: Request) -> bool:
        return req.path.split("?", 1)[0] in ("/", "") and \
            req.headers.get("content-type", "").startswith(FORM)

    def throttled(self, req: Request) -> Reply:
        return _error(400, "Throttling.User", "Request was denied due to user flow control.", self.emu.new_id())

    def handle(self, req: Request) -> Reply:
        rid = self.emu.new_id().upper()
        form = dict(parse_qsl(req.body.decode("utf-8"), keep_blank_values=True))
        refused = self._check_envelope(form, rid)
        if refused is not None:
            return refused
        phones = _json_array(form.get("PhoneNumberJson"))
        signs = _json_array(form.get("SignNameJson"))
        has_params = "TemplateParamJson" in form
        params = _json_array(form.get("TemplateParamJson")) if has_params else [{}] * len(phones or [])
        if phones is not None and len(phones) > MAX_NUMBERS:
            return _error(200, "isv.MOBILE_COUNT_OVER_LIMIT", f"at most {MAX_NUMBERS} numbers a request", rid)
        if not phones or signs is None or params is None or not len(phones) == len(signs) == len(params):
            return _error(200, "isv.INVALID_JSON_PARAM",
                          "PhoneNumberJson, SignNameJson and TemplateParamJson must be JSON arrays of equal length", rid)
        if not all(isinstance(p, dict) and all(isinstance(v, str) for v in p.values()) for p in params):
            return _error(200, "isv.INVALID_JSON_PARAM", "TemplateParamJson items must be objects of strings", rid)
        if not all(isinstance(s, str) and s for s in signs):
            return _error(200, "isv.SMS_SIGNATURE_ILLEGAL", "sign name missing", rid)
        if not form.get("TemplateCode"):
            return _error(200, "isv.SMS_TEMPLATE_ILLEGAL", "TemplateCode missing", rid)
        if not all(isinstance(p, str) and p.isdigit() and p.isascii() for p in phones):
            return _error(200, "isv.MOBILE_NUMBER_ILLEGAL", "invalid mobile number", rid)
        if any(self.emu.is_blacklisted(_e164(p)[1:]) for p in phones):  # all or nothing
            return _error(200, "isv.BLACK_KEY_CONTROL_LIMIT", "a number of the request is in the black list", rid)
        with self.emu.lock:  # the seeded rng is shared with the fault injection
            biz_id = f"{self.emu.rng.randrange(10**17, 10**18)}^0"
        accepted = [{"phone": _e164(p), "template_id": form["TemplateCode"], "params": tp, "sender_id": s,
                     "user_id": form.get("OutId") or None, "ref": biz_id}
                    for p, s, tp in zip(phones, signs, params)]
        return Reply.json(200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": rid}, accepted)

    def _check_envelope(self, form: dict[str, str], rid: str) -> Reply | None:
        """Key, signature, action, version, clock and nonce; a Reply when refused."""
        opts = self.emu.options
        if form.get("AccessKeyId") != opts.key_id:
            return _error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.", rid)
        if not form.get("Signature"):
            return _error(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.", rid)
        if not hmac.compare_digest(form["Signature"], rpc_signature(form, opts.key_secret, "POST")):
            # echoes the string to sign as the real service does: it holds the phone numbers
            return _error(400, "SignatureDoesNotMatch",
                          "Specified signature is not matched with our calculation. server string to sign is:"
                          + string_to_sign(form, "POST"), rid)
        if form.get("Action") != ACTION:
            return _error(404, "InvalidAction.NotFound", f"Specified api is not found: {form.get('Action')}", rid)
        if form.get("Version") != VERSION:
            return _error(400, "InvalidVersion", f"Specified version is not valid: {form.get('Version')}", rid)
        try:
            when = datetime.strptime(form.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return _error(400, "InvalidTimeStamp.Format", "Specified time stamp is not valid.", rid)
        if abs(time.time() - when.timestamp()) > 900:
            return _error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", rid)
        nonce = form.get("SignatureNonce", "")
        with self.emu.lock:
            used = not nonce or nonce in self.nonces
            self.nonces.add(nonce)
        if used:
            return _error(400, "SignatureNonceUsed", "Specified signature nonce was used already.", rid)
        return None
