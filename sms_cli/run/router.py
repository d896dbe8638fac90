"""The router: a run over several provider sections (config `routes:`, routes.py).

Design (of the two the issue offers): one Dispatcher per provider section, each with its own
adapter, batch size and rate limiter, and a router in front of them that assigns each validated
row to its route's current provider and, when a provider goes down, re-feeds the rows it never
took to the next provider of their route. A routing facade behind the Provider interface was
the other choice; it would hide from the dispatcher that one request mixes accounts with
different batch sizes and rate limits (Tencent 200 numbers at 10 requests/s, Aliyun 100 at
20/s), and a failed-over request would be retried inside one `send` call, out of the ledger's
sight. Here every request still goes through an ordinary Dispatcher, so the ledger stays the
only place that settles a row, and the rows a provider hands back were answered with an
account-level refusal or no connection at all: never an unknown outcome, so a row is taken by
one provider at most.

A provider goes down (dispatch.py `failover`) on an answer of the FATAL class (credentials,
account or balance, daily limit; an endpoint that refused every connection attempt). Its
queued and unanswered rows come back here, through a queue the main thread reads (a worker never
blocks on another provider's queue), and are placed with the next provider of their route that
is up and has a template mapping for them. A row with no mapping there is filed (not sent, with
that reason); a row whose route has no provider left stops the run as before (exit 3).

Batches are per (route, provider): a request never mixes routes, so requests and cost per route
are exact in `plan` and in the summary.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque

from ..core.model import Message
from ..core.outcomes import Fate, RunEnd
from ..guards.rules import region_of
from ..guards.settings import prices
from ..providers import make_provider
from ..store.ledger import Ledger
from .plan import Batcher, Estimator
from .routes import Route, Routes

log = logging.getLogger("sms_cli.router")


class _Wire:
    """What a lane's dispatcher sends through: the adapter, handed each row's wire copy (the
    provider's template id and params), while the journal and ledger keep the row itself."""

    def __init__(self, provider):
        self.provider = provider
        self.endpoint = provider.endpoint
        self.requests: Counter = Counter()  # route -> requests sent
        self._lock = threading.Lock()

    def send(self, batch: list[Message]) -> list:
        with self._lock:
            self.requests[batch[0].route] += 1
        return self.provider.send([m.wire for m in batch])


class _DryLane:
    """A plan: counts requests and estimates cost per route at this provider's prices."""

    down = None

    def __init__(self, name: str, estimators: dict[str, Estimator]):
        self.name, self.estimators = name, estimators
        self.requests: Counter = Counter()
        self.batch_sizes: Counter = Counter()

    def submit(self, batch: list[Message], poll=None) -> None:
        self.requests[batch[0].route] += 1
        self.batch_sizes[len(batch)] += 1
        est = self.estimators[batch[0].route]
        for m in batch:
            est.add(m)

    def idle(self) -> bool:
        return True

    def close(self, poll=None) -> None:
        pass


class Lane:
    def __init__(self, name: str, provider, dispatcher):
        self.name, self.provider, self.dispatcher = name, provider, dispatcher
        self.batchers: dict[str, Batcher] = {}  # route -> its batcher at this provider

    def batcher(self, route: str) -> Batcher:
        b = self.batchers.get(route)
        if b is None:
            p = self.provider
            b = self.batchers[route] = Batcher(p.max_batch, lambda m: p.batch_key(m.wire))
        return b

    @property
    def down(self) -> str | None:
        return self.dispatcher.down


class Router:
    """Takes the place of the batcher and the dispatcher in `send.execute`: `add` and `flush`
    return no batches (they submit them to their provider's dispatcher), `close` ends them all."""

    def __init__(self, routes: Routes, providers: dict, templates: dict):
        self.routes, self.providers, self.templates = routes, providers, templates
        self.lanes: dict[str, Lane] = {}
        self.moved: deque = deque()  # (rows, why): handed back by a provider that went down
        self.notes: list[str] = []  # for the summary: each provider that went down, once
        self._noted: set[str] = set()
        self.dry = False

    def start(self, ledger: Ledger, stop, make_dispatcher, poll, estimator: Estimator | None = None) -> "Router":
        """`make_dispatcher(provider, failover)`: a live run's Dispatcher for one provider
        section; with `estimator` (a plan), nothing is sent and each lane only counts."""
        self.ledger, self.stop, self.poll, self.estimator = ledger, stop, poll, estimator
        self.dry = estimator is not None
        self.estimators: dict[tuple[str, str], Estimator] = {}
        for name, provider in self.providers.items():
            if self.dry:
                per = {r.name: self.estimators.setdefault((r.name, name), Estimator(self.templates,
                                                                                    prices(provider.settings)))
                       for r in self.routes.routes if name in r.providers}
                dispatcher = _DryLane(name, per)
            else:
                dispatcher = make_dispatcher(_Wire(provider), self._failover)
            self.lanes[name] = Lane(name, provider, dispatcher)
        self.placed: Counter = Counter()  # (route, provider) -> rows (a plan's only count)
        return self

    # --- the main thread: in place of Batcher.add / flush and Dispatcher.submit / close --------
    def add(self, msg: Message) -> tuple:
        if self.moved:
            self.pump()
        route = self.routes.route_of(msg, region_of(msg.phone, msg.country_code))
        if route is None:
            self.ledger.stopped([msg], Fate.INVALID, "NoRoute", _no_route(msg))
            return ()
        msg.route = route.name
        self._place(msg, route, 0, None)
        return ()

    def submit(self, batch, poll=None) -> None:  # never called: add() and flush() return no batches
        raise AssertionError("the router submits its own batches")

    def flush(self) -> tuple:
        for lane in self.lanes.values():
            for b in lane.batchers.values():
                for batch in b.flush():
                    lane.dispatcher.submit(batch, self.poll)
        return ()

    def close(self, poll) -> None:
        """Until every lane is idle and no row waits to move: place moved rows, flush; then
        close every dispatcher (a stop: at once, with each one's grace period)."""
        try:
            while not self.stop.is_set():
                poll()
                # idle first: a worker hands its rows back before it counts itself idle, so rows
                # handed back before this reading are in `moved` below
                idle = all(lane.dispatcher.idle() for lane in self.lanes.values())
                if self.moved:
                    self.pump()
                    self.flush()
                elif idle:
                    break
                else:
                    time.sleep(0.002)
        finally:
            for lane in self.lanes.values():
                lane.dispatcher.close(poll)
            # a stop left these unplaced: not sent, as the dispatcher settles its queued rows
            reason = self.stop.reason
            why = (self.stop.detail if reason == RunEnd.FATAL
                   else f"the run was interrupted ({reason})" if reason else "the run stopped")
            rest = [m for rows, _ in self._drain() for m in rows]
            rest += [m for lane in self.lanes.values() for b in lane.batchers.values() for batch in b.flush()
                     for m in batch]
            if rest:
                self.ledger.stopped(rest, Fate.NOT_SENT, "NotSent", f"not sent: {why}")
            if self.dry:
                self._merge_estimates()

    # --- placing rows ---------------------------------------------------------------------------
    def _failover(self, rows: list[Message], why: str) -> None:
        """A worker of a provider that went down hands back the rows it never took (no blocking)."""
        self.moved.append((rows, why))

    def _drain(self):
        while self.moved:
            yield self.moved.popleft()

    def pump(self) -> None:
        """Place the rows handed back, and those still buffered for a provider now down."""
        for rows, why in self._drain():
            name = rows[0].provider  # the lane's: every row handed back was placed there
            if name not in self._noted:
                self._noted.add(name)
                self.notes.append(f"provider {name} went down ({why}); its rows moved to the next "
                                  "provider of their route")
                log.warning("provider %s went down (%s): moving its rows to their fallback", name, why)
            for m in rows:
                self._move(m, why)
        for lane in self.lanes.values():
            if lane.down is not None:
                for b in lane.batchers.values():
                    for batch in b.flush():
                        for m in batch:
                            self._move(m, lane.down)

    def _move(self, msg: Message, why: str) -> None:
        route = next(r for r in self.routes.routes if r.name == msg.route)
        if self.stop.is_set():
            self.ledger.stopped([msg], Fate.NOT_SENT, "NotSent", f"not sent: {self.stop.detail or why}")
            return
        self._place(msg, route, route.providers.index(msg.provider) + 1, f"provider {msg.provider}: {why}")

    def _place(self, msg: Message, route: Route, start: int, why: str | None) -> None:
        up = [(name, self.lanes[name].provider) for name in route.providers[start:] if self.lanes[name].down is None]
        placed = route.place(msg, up, self._names(msg.template_id))
        if isinstance(placed, tuple):
            name, msg.wire = placed
            msg.provider = name
            if self.dry:
                self.placed[(route.name, name)] += 1
            lane = self.lanes[name]
            for batch in lane.batcher(route.name).add(msg):
                lane.dispatcher.submit(batch, self.poll)
            return
        reasons, alive = placed, bool(up)
        if not alive:  # no fallback left: the run stops as it would without routes (exit 3)
            why = why or f"route {route.name}: every provider is down"
            self.stop.set(RunEnd.FATAL, why)
            self.ledger.stopped([msg], Fate.NOT_SENT, "NotSent", f"not sent: {why}")
        elif why is None:  # no provider of its route can take it at all: invalid, as a bad row
            self.ledger.stopped([msg], Fate.INVALID, "NoMapping", "; ".join(reasons))
        else:  # the fallback cannot take this template: filed with that reason, never sent
            self.ledger.stopped([msg], Fate.NOT_SENT, "NoMapping", f"not sent: {why}; {'; '.join(reasons)}")

    def close_adapters(self, but) -> None:
        """Close the adapters this router made (`but`: the caller's own, closed by the caller)."""
        for p in self.providers.values():
            if p is not but:
                p.close()

    def _names(self, template: str) -> tuple[str, ...] | None:
        tpl = self.templates.get(template)
        return tpl.names if tpl is not None else None

    def check(self, msg: Message) -> tuple[str, str] | None:
        """`validate`: (code, reason) when no route, or no provider of its route, can take the row."""
        route = self.routes.route_of(msg, region_of(msg.phone, msg.country_code))
        if route is None:
            return "NoRoute", _no_route(msg)
        placed = route.place(msg, [(n, self.providers[n]) for n in route.providers], self._names(msg.template_id))
        return None if isinstance(placed, tuple) else ("NoMapping", "; ".join(placed))

    # --- what the summary and the plan say ------------------------------------------------------
    def _merge_estimates(self) -> None:
        """A plan's overall estimate: the sum of each route's at its providers' prices."""
        est = self.estimator
        est.by_country.clear()
        est.by_template.clear()
        for e in self.estimators.values():
            est.lower_bound |= e.lower_bound
            est.unpriced |= e.unpriced
            est.prices = est.prices or e.prices
            for region, c in e.by_country.items():
                into = est.by_country.setdefault(region, {"rows": 0, "parts": 0, "cost": 0.0})
                for k in into:
                    into[k] += c[k]
            for tid, t in e.by_template.items():
                into = est.by_template.get(tid)
                if into is None:
                    est.by_template[tid] = {**t, "encodings": set(t["encodings"])}
                    continue
                into["rows"] += t["rows"]
                into["parts"] += t["parts"]
                into["encodings"] |= t["encodings"]
                into["max_length"] = max(into["max_length"], t["max_length"])
                if t["min_length"] is not None:
                    into["min_length"] = t["min_length"] if into["min_length"] is None else min(into["min_length"],
                                                                                              t["min_length"])

    @property
    def batch_sizes(self) -> dict[int, int]:
        out: Counter = Counter()
        for lane in self.lanes.values():
            out.update(getattr(lane.dispatcher, "batch_sizes", {}))
        return dict(out)

    def report(self, tally) -> dict:
        """Rows (by how they ended), requests and, in a plan, cost per route and provider; and
        the same per provider."""
        routes: dict[str, dict] = {}
        for r in self.routes.routes:
            per = {}
            for name in r.providers:
                lane = self.lanes[name]
                requests = (lane.dispatcher.requests if self.dry else lane.dispatcher.provider.requests)[r.name]
                if self.dry:
                    est = self.estimators[(r.name, name)]
                    entry = {"rows": self.placed[(r.name, name)], "requests": requests, "parts": est.parts,
                             "cost": round(est.cost, 6) if est.prices else None}
                else:
                    counts = tally.by_route.get((r.name, name), Counter())
                    entry = {"rows": sum(counts.values()), "requests": requests,
                             **{f.counter: n for f, n in counts.items()}}
                per[name] = entry
            unplaced = tally.by_route.get((r.name, "-"), Counter())  # no provider could take them
            total: Counter = Counter({"rows": sum(unplaced.values()), "requests": 0,
                                      **{f.counter: n for f, n in unplaced.items()}})
            for e in per.values():
                total.update({k: v for k, v in e.items() if k != "cost" and isinstance(v, int)})
            total = dict(total)
            if self.dry:
                costs = [e["cost"] for e in per.values() if e["cost"] is not None]
                total["cost"] = round(sum(costs), 6) if costs else None
            routes[r.name] = {**total, "providers": per}
        providers: dict[str, dict] = {}
        for route in routes.values():
            for name, e in route["providers"].items():
                into = providers.setdefault(name, {"rows": 0, "requests": 0, "down": self.lanes[name].down})
                for k, v in e.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        into[k] = round(into.get(k, 0) + v, 6)
        return {"routes": routes, "providers": providers}


def _no_route(msg: Message) -> str:
    return f"no route matches {region_of(msg.phone, msg.country_code)} and template {msg.template_id}"


def build(cfg, provider, concurrency: int, transport=None) -> Router:
    """The router of a run over `cfg.routes`; `provider`: the adapter already made for one of
    its sections (setup's), reused. Every other section gets its own adapter, on `transport`
    when one is handed in (a test's scripted wire)."""
    providers = {name: provider if name == provider.settings.name
                 else make_provider(cfg.providers[name], cfg.templates, concurrency=concurrency, transport=transport)
                 for name in cfg.routes.providers}
    return Router(cfg.routes, providers, cfg.templates)


def routed(cfg, provider_flag: str | None) -> bool:
    """Routes decide the provider unless --provider names one (then every row goes there)."""
    return bool(cfg.routes) and not provider_flag
