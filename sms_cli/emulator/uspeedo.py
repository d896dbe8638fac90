"""uSpeedo as the spec pages describe it: POST /api (signed) and /api/v1/usms/<Action> (Basic)."""
from __future__ import annotations

import base64
import hmac
import time

from ..providers.uspeedo import BATCH, SINGLE, sign
from .server import Dialect, Reply, Request, digits

MAX_NUMBERS = 1000


def _error(code: int, message: str, action: str = "") -> Reply:
    return Reply.json(200, {"RetCode": code, "Message": message, "Action": f"{action}Response"})


def _e164(wire: str) -> str:
    """uSpeedo wire phone -> +digits; without (CC) the number is mainland China."""
    d = digits(wire)
    return "+" + (d if "(" in wire or wire.startswith("00") else "86" + d)


class USpeedoDialect(Dialect):
    name = "uspeedo"

    def matches(self, req: Request) -> bool:
        return req.path.rstrip("/") == "/api" or req.path.startswith("/api/v1/usms/")

    def throttled(self, req: Request) -> Reply:
        return Reply.json(429, {"RetCode": 429, "Message": "too many requests"}, headers={"Retry-After": "0"})

    def handle(self, req: Request) -> Reply:
        body = req.json()
        basic = req.path.startswith("/api/v1/usms/")
        opts = self.emu.options
        if basic:
            action = req.path.rsplit("/", 1)[-1]
            expected = "Basic " + base64.b64encode(f"{opts.key_id}:{opts.key_secret}".encode()).decode()
            if not hmac.compare_digest(req.headers.get("authorization", ""), expected):
                return Reply.json(401, {"RetCode": 171, "Message": "Unauthorized"})
        else:
            action = body.get("Action", "")
            if req.headers.get("x-access-key-id") != opts.key_id:
                return _error(172, "access key not found", action)
            try:
                skew = abs(time.time() - int(req.headers.get("x-timestamp", "")))
            except ValueError:
                return _error(171, "Signature VerifyAC Error: bad X-Timestamp", action)
            nonce = req.headers.get("x-nonce", "")
            if skew > 300 or not nonce or len(nonce) > 32:
                return _error(171, "Signature VerifyAC Error: timestamp or nonce", action)
            if not hmac.compare_digest(req.headers.get("x-signature", ""), sign(body, opts.key_secret)):
                return _error(171, "Signature VerifyAC Error", action)
            if "AccountId" in body and not isinstance(body["AccountId"], int):
                return _error(215392, "AccountId must be an integer", action)
        if action == BATCH:
            return self._batch(body, basic)
        if action == SINGLE:
            return self._single(body)
        return _error(160, f"Action [{action}] not found", action)

    def _batch(self, body: dict, basic: bool) -> Reply:
        items = body.get("TaskContent")
        if not isinstance(items, list) or not items:
            return _error(215397, "Missing params: TaskContent", BATCH)
        total = sum(len(i.get("Target") or []) for i in items)
        if total > MAX_NUMBERS:
            return _error(215392, f"too many numbers in one request: {total} > {MAX_NUMBERS}", BATCH)
        accepted, fail_content, failed_targets = [], [], []
        session = self.emu.new_id()
        for item in items:
            tid = item.get("TemplateId")
            if not tid or not item.get("Target"):
                return _error(215397, "Missing params: TemplateId/Target", BATCH)
            failed_here = []
            for t in item["Target"]:
                phone, params = t.get("Phone"), t.get("TemplateParams", [])
                if not phone:
                    return _error(215397, "Missing params: Phone", BATCH)
                if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                    return _error(215392, "TemplateParams must be an array of strings", BATCH)
                e164 = _e164(phone)
                if self.emu.is_blacklisted(e164[1:]):
                    failed_here.append(t)
                    failed_targets.append({"Phone": phone, "TemplateParams": params,
                                           "FailureReason": "phone in the black list"})
                    continue
                accepted.append({"phone": e164, "template_id": tid, "params": params,
                                 "sender_id": t.get("SenderId") or item.get("SenderId"),
                                 "user_id": t.get("UserId"), "ref": session})
            if failed_here:
                fail_content.append({"TemplateId": tid, "SenderId": item.get("SenderId", ""),
                                     "Target": [{**t, "FailureDetails": "phone in the black list"}
                                                for t in failed_here],
                                     "FailureDetails": "phone in the black list"})
        answer = {"RetCode": 0, "Action": f"{BATCH}Response", "Message": "submit success",
                  "SuccessCount": len(accepted), "ReqUuid": self.emu.new_id()}
        if accepted:
            answer["SessionNo"] = [session] if basic else session
        if basic:
            answer["FailedTargetPhones"] = failed_targets
        elif fail_content:
            answer["FailContent"] = fail_content
        return Reply.json(200, answer, accepted)

    def _single(self, body: dict) -> Reply:
        phones, tid = body.get("PhoneNumbers"), body.get("TemplateId")
        if not isinstance(phones, list) or not phones or not tid:
            return _error(215397, "Missing params: PhoneNumbers/TemplateId", SINGLE)
        if len(phones) > MAX_NUMBERS:
            return _error(215392, f"too many numbers in one request: {len(phones)} > {MAX_NUMBERS}", SINGLE)
        params = body.get("TemplateParams", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return _error(215392, "TemplateParams must be an array of strings", SINGLE)
        blocked = [p for p in phones if self.emu.is_blacklisted(_e164(p)[1:])]
        if blocked:  # SendUSMSMessage has no per-number answer: the request fails as a whole
            return _error(215392, "phone in the black list", SINGLE)
        session = self.emu.new_id()
        accepted = [{"phone": _e164(p), "template_id": tid, "params": params,
                     "sender_id": body.get("SenderId"), "user_id": body.get("UserId"), "ref": session}
                    for p in phones]
        answer = {"RetCode": 0, "Action": f"{SINGLE}Response", "Message": "submit success",
                  "SessionNo": session}
        if body.get("UserId"):
            answer["UserId"] = body["UserId"]
        return Reply.json(200, answer, accepted)
