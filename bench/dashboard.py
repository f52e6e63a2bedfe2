"""How long the lead dashboard's figures take to compute from the event log, in memory.

Builds ~10,000 synthetic conversations' event lists over 30 days (seeded), then times:
every SLA timeline under business hours (Europe/Oslo, Norwegian holidays), the summary per
channel, per visibility and per agent, and first-contact resolution. No database, no server:
this is the computational core only, so the figure is a floor for the page's render time.

    .venv/bin/python -m bench.dashboard [--n 10000] [--seed 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from socialcrm.calendars import (
    BusinessCalendar,
    add_business_time,
    norwegian_holidays,
    weekdays,
)
from socialcrm.metrics import Event, SlaPolicy, timeline
from socialcrm.sla_figures import (
    by_agent,
    by_attr,
    by_visibility,
    first_contact_resolution,
    summarize,
)

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
CALENDAR = BusinessCalendar(hours=weekdays("08:00", "17:00"), holidays=norwegian_holidays(2026))
CHANNELS = ("facebook", "instagram", "x", "email")
AGENTS = tuple(range(1, 21))
#: Defaults from the issue: public 60 min, private 4 h, e-mail 24 h.
POLICIES = {(ch, public): SlaPolicy(60 if public else 240, 60 if public else 240, 8 * 60, CALENDAR)
            for ch in CHANNELS for public in (True, False)}
POLICIES[("email", False)] = SlaPolicy(24 * 60, 24 * 60, 3 * 24 * 60, CALENDAR)
TARGET_SECONDS = 2.0  # informational: the dashboard should feel instant for a month of a busy team


def synthetic_conversation(rng: random.Random) -> tuple[dict[str, Any], list[Event]]:
    """One plausible log: a customer, maybe a bot acknowledgement, replies, pauses, a resolve, a reopen."""
    channel = rng.choice(CHANNELS)
    public = channel != "email" and rng.random() < 0.4
    at = _daytime(NOW - timedelta(days=rng.randrange(30)), rng)
    events = [Event("created", at, None, {"public": public}), Event("customer_message", at)]
    if rng.random() < 0.3:
        events.append(Event("responded", at + timedelta(seconds=5), None, {"automated": True}))
    agent = rng.choice(AGENTS)
    for turn in range(rng.choice((1, 1, 1, 2, 3))):
        at = add_business_time(CALENDAR, at, rng.expovariate(1 / 40) * 60)  # agents answer in opening hours
        kind = "first_response" if turn == 0 else "responded"
        events.append(Event(kind, at, agent) if rng.random() < 0.9 else Event(kind, at, None, {"via": "native app"}))
        if rng.random() < 0.2:
            events.append(Event("pending", at, agent))
        at += timedelta(minutes=rng.expovariate(1 / 240))
        events.append(Event("customer_message", at))
    if rng.random() < 0.8:
        at += timedelta(minutes=rng.expovariate(1 / 60))
        events.append(Event("resolved", at, agent))
        if rng.random() < 0.1:
            events.append(Event("reopened", at + timedelta(days=rng.uniform(0, 10))))
    return {"channel": channel, "public": public}, [e for e in events if e.at <= NOW]


def _daytime(day: datetime, rng: random.Random) -> datetime:
    """Customers write around the clock, but mostly between 07:00 and 23:00 UTC."""
    return day.replace(hour=0, minute=0) + timedelta(minutes=rng.triangular(7 * 60, 23 * 60, 13 * 60))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1,000 conversations")
    args = parser.parse_args()
    n = 1_000 if args.quick else args.n
    rng = random.Random(args.seed)
    convs, build_s = timed(lambda: [synthetic_conversation(rng) for _ in range(n)])
    timelines, timeline_s = timed(lambda: [
        timeline(events, POLICIES[(attrs["channel"], attrs["public"])], NOW, conversation_id=i, attrs=attrs)
        for i, (attrs, events) in enumerate(convs)])
    tables, summary_s = timed(lambda: {name: summarize(timelines, key) for name, key in
                                       (("all", None), ("channel", by_attr("channel")),
                                        ("visibility", by_visibility), ("agent", by_agent))})
    fcr, fcr_s = timed(lambda: first_contact_resolution({i: ev for i, (_, ev) in enumerate(convs)}, NOW))
    _report(n, sum(len(ev) for _, ev in convs), build_s, timeline_s, summary_s, fcr_s, tables, fcr)


def _report(n: int, events: int, build_s: float, timeline_s: float, summary_s: float, fcr_s: float,
            tables: dict[str, Any], fcr: Any) -> None:
    total = timeline_s + summary_s + fcr_s
    print(f"{n} conversations, {events} events (built in {build_s:.2f} s)")
    print(f"{'figure':<34}{'measured':>12}{'target':>10}")
    for name, value in (("timelines", timeline_s), ("summaries (all/channel/vis/agent)", summary_s),
                        ("first-contact resolution", fcr_s)):
        print(f"{name:<34}{value:>10.3f} s{'':>10}")
    verdict = "PASS" if total <= TARGET_SECONDS else "MISS"
    print(f"{'dashboard figures total':<34}{total:>10.3f} s{TARGET_SECONDS:>8.1f} s  {verdict}")
    for channel, s in sorted(tables["channel"].items()):
        print(f"  {channel:<10} first response median {s.first_response_median or 0:7.1f} min, "
              f"p90 {s.first_response_p90 or 0:7.1f} min, attainment {s.attainment_pct or 0:5.1f} %")
    print(f"  first-contact resolution {fcr.rate_pct or 0:.1f} % ({len(fcr.undecided)} undecided)")
    print(json.dumps({"conversations": n, "events": events, "timelines_s": round(timeline_s, 4),
                      "summaries_s": round(summary_s, 4), "fcr_s": round(fcr_s, 4), "total_s": round(total, 4),
                      "attainment_pct": tables["all"][None].attainment_pct, "fcr_pct": fcr.rate_pct}))


if __name__ == "__main__":
    main()
