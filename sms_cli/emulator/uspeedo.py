"""uSpeedo as the spec pages describe it: POST /api (X-Signature headers; the official SDKs add
`?Action=<Action>` to the URL) and POST /api/v1/usms/<Action> (Basic auth). Errors are HTTP 200
with a non-zero RetCode, except refused Basic credentials (HTTP 401).

Delivery receipts: `GetUSMSSendReceipt` (POST /api, `SessionNoSet` of at most 100) and its Basic
auth form `GET /api/v1/usms/USMSSendReceipt?id=<SessionNo>&id=...`, both answered in the
documented shape: `Data[]` of `{SessionNo, ReceiptSet[]}`, one ReceiptPerPhone per number."""
from __future__ import annotations

import base64
import hmac
import re
import time
from urllib.parse import parse_qsl

import phonenumbers

from ..providers.uspeedo import BATCH, RECEIPT, RECEIPT_BASIC, RECEIPT_MAX_SESSIONS, SINGLE, sign
from .wire import Delivery, Dialect, Reply, Request, possible_e164

MAX_NUMBERS = 1000
MAX_NONCE = 32
CLOCK_SKEW = 300  # seconds
MISSING, BAD_PARAM, TOKEN, SERVER_ERROR = 215397, 215392, 215398, 215400
_WIRE = re.compile(r"\((?:00)?([1-9]\d{0,2})\)\s*([\d\s-]+)|([\d\s-]+)")
_OPTIONAL_STRINGS = ("SenderId", "UserId", "ExtendCode")


def e164(wire) -> str | None:
    """uSpeedo wire number -> E.164: `(CC)national` (or `(00CC)national`); without `(CC)` the
    number is mainland China. None when that is not a valid number."""
    found = _WIRE.fullmatch(wire.strip()) if isinstance(wire, str) else None
    if not found:
        return None
    cc, national, bare = found.groups()
    candidate = "+" + (cc + national if cc else "86" + bare)
    candidate = re.sub(r"[\s-]", "", candidate)
    return candidate if possible_e164(candidate) else None


class USpeedoDialect(Dialect):
    name = "uspeedo"

    def matches(self, req: Request) -> bool:
        path = req.path.rstrip("/")
        return path == "/api" or path.startswith("/api/v1/usms/")

    def _error(self, code: int, message: str, action: str = "") -> Reply:
        return Reply.json(200, {"RetCode": code, "Message": message, "Action": f"{action}Response",
                                "ReqUuid": self.emu.new_id()})

    def throttled(self, req: Request) -> Reply:
        return Reply.json(429, {"RetCode": 429, "Message": "too many requests", "ReqUuid": self.emu.new_id()},
                          headers={"Retry-After": "0"})

    def server_error(self, req: Request) -> Reply:
        return self._error(SERVER_ERROR, "server error")

    def malformed(self, req: Request, message: str) -> Reply:
        return Reply.json(400, {"RetCode": BAD_PARAM, "Message": message, "ReqUuid": self.emu.new_id()})

    def handle(self, req: Request) -> Reply:
        if req.method == "GET" and req.path.rstrip("/") == f"/api/v1/usms/{RECEIPT_BASIC}":
            refused = self._check_basic(req)
            if refused:
                return refused
            return self._receipt([v for k, v in parse_qsl(req.raw_query, keep_blank_values=True) if k == "id"])
        if req.method != "POST":
            return Reply.json(405, {"RetCode": BAD_PARAM, "Message": f"{req.method} not allowed: POST a JSON body",
                                    "ReqUuid": self.emu.new_id()}, headers={"Allow": "POST"})
        body = req.json()
        if not isinstance(body, dict):
            return self.malformed(req, "body is not a JSON object")
        basic = req.path.rstrip("/").startswith("/api/v1/usms/")
        if basic:
            action = req.path.rstrip("/").rsplit("/", 1)[-1]
            refused = self._check_basic(req)
            if refused:
                return refused
        else:
            action = body.get("Action", "")
            refused = self._check_signature(req, body, str(action))
            if refused:
                return refused
            if not action:
                return self._error(160, "Missing Action")
            if "AccountId" not in body:
                return self._error(MISSING, "Missing params: AccountId", action)
            if not isinstance(body["AccountId"], int) or isinstance(body["AccountId"], bool):
                return self._error(BAD_PARAM, "AccountId must be an integer", action)
        if action == BATCH:
            return self._batch(body, basic)
        if action == SINGLE:
            return self._single(body)
        if action in (RECEIPT, RECEIPT_BASIC):
            return self._receipt(body.get("SessionNoSet"))
        return self._error(160, f"Action [{action}] not found", str(action))

    def _check_basic(self, req: Request) -> Reply | None:
        opts = self.emu.options
        expected = "Basic " + base64.b64encode(f"{opts.key_id}:{opts.key_secret}".encode()).decode()
        if not hmac.compare_digest(req.headers.get("authorization", "").encode(), expected.encode()):
            return Reply.json(401, {"RetCode": 171, "Message": "Unauthorized", "ReqUuid": self.emu.new_id()})
        return None

    # --- GetUSMSSendReceipt ----------------------------------------------------------------------
    def _receipt(self, sessions) -> Reply:
        self.emu.receipt_request()
        if sessions is None or sessions == []:
            return self._error(MISSING, "Missing params: SessionNoSet", RECEIPT)
        if not isinstance(sessions, list) or not all(isinstance(s, str) and s for s in sessions):
            return self._error(BAD_PARAM, "SessionNoSet must be an array of SessionNo strings", RECEIPT)
        if len(sessions) > RECEIPT_MAX_SESSIONS:
            return self._error(BAD_PARAM, f"at most {RECEIPT_MAX_SESSIONS} SessionNo a request, got {len(sessions)}",
                               RECEIPT)
        now = time.time()
        data = [{"SessionNo": sn, "ReceiptSet": [_per_phone(d, now) for d in self.emu.deliveries_by_ref(self.name, sn)]}
                for sn in dict.fromkeys(sessions)]
        return Reply.json(200, {"RetCode": 0, "Action": f"{RECEIPT}Response", "Message": "", "Data": data,
                                "ReqUuid": self.emu.new_id()})

    def _check_signature(self, req: Request, body: dict, action: str) -> Reply | None:
        """Key id, clock, nonce and the SHA-1 signature of the X-* headers; a Reply when refused."""
        h, opts = req.headers, self.emu.options
        if h.get("x-access-key-id") != opts.key_id:
            return self._error(172, "access key not found", action)
        try:
            skew = abs(time.time() - int(h.get("x-timestamp", "")))
        except ValueError:
            return self._error(171, "Signature VerifyAC Error: bad X-Timestamp", action)
        nonce = h.get("x-nonce", "")
        if skew > CLOCK_SKEW or not nonce or len(nonce) > MAX_NONCE:
            return self._error(171, "Signature VerifyAC Error: timestamp or nonce", action)
        if not hmac.compare_digest(h.get("x-signature", "").encode(), sign(body, opts.key_secret).encode()):
            return self._error(171, "Signature VerifyAC Error", action)
        return None

    def _batch(self, body: dict, basic: bool) -> Reply:
        items = body.get("TaskContent")
        if items is None:
            return self._error(MISSING, "Missing params: TaskContent", BATCH)
        if not isinstance(items, list) or not items:
            return self._error(BAD_PARAM, "TaskContent must be a non-empty array", BATCH)
        for n, item in enumerate(items):
            refused = self._check_item(item, f"TaskContent.{n}")
            if refused:
                return refused
        total = sum(len(i["Target"]) for i in items)
        if total > MAX_NUMBERS:
            return self._error(BAD_PARAM, f"too many numbers in one request: {total} > {MAX_NUMBERS}", BATCH)
        if self.emu.reserve(self.name, total, whole=True) < total:  # --account-limit: the account's refusal
            return self._error(TOKEN, "token could not be parsed", BATCH)
        accepted, fail_content, failed_targets = [], [], []
        session = self.emu.new_id()
        for item in items:
            tid = item["TemplateId"]
            if not self.emu.knows_template(tid):
                # a template check fails the whole item; its targets carry no FailureDetails
                fail_content.append({"TemplateId": tid, "SenderId": item.get("SenderId", ""),
                                     "Target": [dict(t) for t in item["Target"]],
                                     "FailureDetails": f"template {tid} does not exist or is not approved"})
                failed_targets += [{"Phone": t["Phone"], "TemplateParams": t.get("TemplateParams", []),
                                    "FailureReason": "template does not exist"} for t in item["Target"]]
                continue
            failed_here = []
            for t in item["Target"]:
                params = t.get("TemplateParams", [])
                phone = e164(t["Phone"])
                problem = self.emu.template_problem(tid, params)
                if phone is None:
                    reason, invalid = "invalid phone number", True
                elif problem:
                    reason, invalid = f"TemplateParams do not match the template: {problem[1]}", False
                elif self.emu.is_blacklisted(phone[1:]):
                    reason, invalid = "phone in the black list", False
                elif self.emu.blocked(params):
                    reason, invalid = "content contains sensitive words", False
                else:
                    accepted.append({"phone": phone, "template_id": tid, "params": params,
                                     "sender_id": t.get("SenderId") or item.get("SenderId"),
                                     "user_id": t.get("UserId"), "ref": session})
                    continue
                fields = self.emu.options.fail_content_fields
                shown = t if fields is None else {k: v for k, v in t.items() if k in fields}
                failed_here.append({**shown, "FailureDetails": reason, **({"Invalid": True} if invalid else {})})
                failed_targets.append({"Phone": t["Phone"], "TemplateParams": params, "FailureReason": reason})
            if failed_here:
                fail_content.append({"TemplateId": tid, "SenderId": item.get("SenderId", ""),
                                     "Target": failed_here})
        partial = fail_content and accepted and self.emu.options.partial_retcode is not None
        answer = {"RetCode": self.emu.options.partial_retcode if partial else 0,
                  "Action": f"{BATCH}Response", "Message": "partly submitted" if partial else "submit success",
                  "SuccessCount": len(accepted), "ReqUuid": self.emu.new_id()}
        if accepted:
            answer["SessionNo"] = [session] if basic else session
        if basic:
            answer["FailedTargetPhones"] = failed_targets
        elif fail_content:
            answer["FailContent"] = fail_content
        return Reply.json(200, answer, accepted)

    def _check_item(self, item, where: str) -> Reply | None:
        if not isinstance(item, dict):
            return self._error(BAD_PARAM, f"{where} must be an object", BATCH)
        for name in ("TemplateId", "Target"):
            if not item.get(name):
                return self._error(MISSING, f"Missing params: {where}.{name}", BATCH)
        if not isinstance(item["TemplateId"], str) or not isinstance(item.get("SenderId", ""), str):
            return self._error(BAD_PARAM, f"{where}: TemplateId and SenderId must be strings", BATCH)
        if not isinstance(item["Target"], list):
            return self._error(BAD_PARAM, f"{where}.Target must be an array", BATCH)
        for n, t in enumerate(item["Target"]):
            if not isinstance(t, dict):
                return self._error(BAD_PARAM, f"{where}.Target.{n} must be an object", BATCH)
            if not t.get("Phone"):
                return self._error(MISSING, f"Missing params: {where}.Target.{n}.Phone", BATCH)
            params = t.get("TemplateParams", [])
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return self._error(BAD_PARAM, "TemplateParams must be an array of strings", BATCH)
            if not all(isinstance(t.get(k, ""), str) for k in ("Phone", *_OPTIONAL_STRINGS)):
                return self._error(BAD_PARAM, f"{where}.Target.{n}: Phone, SenderId, UserId and ExtendCode "
                                              "must be strings", BATCH)
        return None

    def _single(self, body: dict) -> Reply:
        phones, tid = body.get("PhoneNumbers"), body.get("TemplateId")
        if not phones or not tid:
            return self._error(MISSING, "Missing params: PhoneNumbers/TemplateId", SINGLE)
        if not isinstance(phones, list) or not all(isinstance(p, str) for p in phones) or not isinstance(tid, str):
            return self._error(BAD_PARAM, "PhoneNumbers must be an array of strings, TemplateId a string", SINGLE)
        if len(phones) > MAX_NUMBERS:
            return self._error(BAD_PARAM, f"too many numbers in one request: {len(phones)} > {MAX_NUMBERS}", SINGLE)
        params = body.get("TemplateParams", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return self._error(BAD_PARAM, "TemplateParams must be an array of strings", SINGLE)
        problem = self.emu.template_problem(tid, params)
        if problem:
            return self._error(BAD_PARAM, problem[1], SINGLE)
        numbers = [e164(p) for p in phones]
        if not all(numbers):
            return self._error(BAD_PARAM, "invalid phone number", SINGLE)
        if any(self.emu.is_blacklisted(n[1:]) for n in numbers):
            # SendUSMSMessage has no per-number answer: the request fails as a whole
            return self._error(BAD_PARAM, "phone in the black list", SINGLE)
        session = self.emu.new_id()
        accepted = [{"phone": n, "template_id": tid, "params": params, "sender_id": body.get("SenderId"),
                     "user_id": body.get("UserId"), "ref": session} for n in numbers]
        answer = {"RetCode": 0, "Action": f"{SINGLE}Response", "Message": "submit success",
                  "SessionNo": session, "ReqUuid": self.emu.new_id()}
        if body.get("UserId"):
            answer["UserId"] = body["UserId"]
        return Reply.json(200, answer, accepted)


def _per_phone(d: Delivery, now: float) -> dict:
    """One ReceiptPerPhone: `Unknow` (sic, the API's spelling) until the report is in."""
    number = phonenumbers.parse(d.phone, None)
    region = phonenumbers.region_code_for_number(number)
    ready = d.ready(now)
    result = ("Success" if d.delivered else "Fail") if ready else "Unknow"
    return {"Phone": f"({number.country_code}){phonenumbers.national_significant_number(number)}",
            "CountryCode": str(number.country_code), "BrevityCode": region if region and region != "ZZ" else "",
            "CostCount": d.parts, "ReceiptResult": result, "ReceiptCode": d.code if ready else "",
            "ReceiptDesc": d.text if ready else "", "ReceiptTime": int(d.at) if ready else 0,
            "UserId": d.entry.get("user_id") or ""}
