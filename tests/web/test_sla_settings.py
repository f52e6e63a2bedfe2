"""The SLA settings pages (leads and admins only), the leads' alert banner and the per-conversation
SLA timeline, through the real app."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from socialcrm import audit, models, sla_policies
from socialcrm.models import utcnow
from tests.support import ev, minutes
from tests.web.conftest import conversation_of

calendar_t, channel_sla_t, channel_t = (models.TeamCalendar.__table__, models.ChannelSla.__table__,
                                        models.Channel.__table__)
OFFICE_FORM = {"tz": "Europe/Oslo", "at_risk_percent": "75", "holidays": "2026-12-24\n2026-12-31",
               **{f"hours_{d}": "08:00-11:30, 12:00-16:00" for d in range(5)}, "hours_5": "", "hours_6": ""}


async def team_of(world, channel_id: int) -> int:
    return (await world.core.channels.get(channel_id)).info.team_id


async def stored_calendars(world) -> list:
    async with world.core.engine.connect() as conn:
        return (await conn.execute(sa.select(calendar_t))).all()


async def test_agents_get_403_on_every_settings_page(signed_in, world) -> None:
    b = await signed_in("agent")
    team = await team_of(world, world.care_channel)
    for path in ("/sla", f"/sla/channels/{world.care_channel}", f"/sla/teams/{team}", "/sla/alerts"):
        resp, _ = await b.get(path)
        assert resp.status == 403, path
    for path in (f"/sla/channels/{world.care_channel}", f"/sla/teams/{team}", f"/sla/teams/{team}/holidays"):
        resp, _ = await b.post(path, OFFICE_FORM)
        assert resp.status == 403, path
    assert await stored_calendars(world) == []
    _, page = await b.get("/")
    assert 'href="/sla"' not in page


async def test_a_lead_saves_business_hours_and_it_is_audited(signed_in, world) -> None:
    b = await signed_in("lead")
    team = await team_of(world, world.care_channel)
    _, page = await b.get(f"/sla/teams/{team}")
    assert 'name="csrf_token"' in page and 'href="/sla"' in page
    resp, _ = await b.post(f"/sla/teams/{team}", OFFICE_FORM)
    assert resp.status == 303
    [row] = await stored_calendars(world)
    assert (row.tz, row.always_open, row.at_risk_fraction) == ("Europe/Oslo", False, 0.75)
    assert row.hours["0"] == [["08:00", "11:30"], ["12:00", "16:00"]] and "5" not in row.hours
    assert row.holidays == ["2026-12-24", "2026-12-31"]
    [entry] = await audit.entries(world.core.engine, action="sla.calendar")
    assert entry.actor_id == world.lead_id and entry.before["always_open"] is True
    assert entry.after["holidays"] == ["2026-12-24", "2026-12-31"]
    _, page = await b.get(f"/sla/teams/{team}?saved=1")
    assert "08:00-11:30, 12:00-16:00" in page and "2026-12-31" in page
    _, overview = await b.get("/sla")
    assert "Mon 08:00–11:30, 12:00–16:00; Tue" in overview and "75 %" in overview
    assert "24/7" in overview                                    # the other team: nothing stored


async def test_bad_calendar_input_is_explained_and_nothing_is_stored(signed_in, world) -> None:
    b = await signed_in("lead")
    team = await team_of(world, world.care_channel)
    await b.get(f"/sla/teams/{team}")
    cases = [({"tz": "Europe/Olso"}, "is not a time zone we know"),
             ({"hours_0": "8-16"}, "Monday: &#34;8-16&#34; is not like 08:00-16:00."),
             ({"hours_2": "16:00-08:00"}, "Wednesday: opening 16:00-08:00 must end after it starts"),
             ({"holidays": "24.12.2026"}, "Holiday &#34;24.12.2026&#34; is not a date"),
             ({"at_risk_percent": "120"}, "between 1 and 99 percent"),
             ({"at_risk_percent": "lots"}, "whole percentage")]
    for change, words in cases:
        resp, page = await b.post(f"/sla/teams/{team}", {**OFFICE_FORM, **change})
        assert resp.status == 422 and words in page, change
        assert 'name="csrf_token"' in page
    assert await stored_calendars(world) == []
    assert await audit.entries(world.core.engine, action="sla") == []


async def test_norwegian_and_swedish_holidays_can_be_added_for_a_year(signed_in, world) -> None:
    b = await signed_in("lead")
    team = await team_of(world, world.care_channel)
    await b.get(f"/sla/teams/{team}")
    assert (await b.post(f"/sla/teams/{team}/holidays", {"country": "NO", "year": "2027"}))[0].status == 303
    assert (await b.post(f"/sla/teams/{team}/holidays", {"country": "SE", "year": "2027"}))[0].status == 303
    [row] = await stored_calendars(world)
    assert {"2027-05-17", "2027-06-06", "2027-06-25"} <= set(row.holidays)     # 17 May, Sweden's day, Midsummer Eve
    resp, page = await b.post(f"/sla/teams/{team}/holidays", {"country": "DK", "year": "2027"})
    assert resp.status == 422 and "Norwegian or Swedish" in page
    resp, page = await b.post(f"/sla/teams/{team}/holidays", {"country": "NO", "year": "20x7"})
    assert resp.status == 422 and "between 2000 and 2100" in page


async def test_a_lead_edits_a_channels_targets(signed_in, world) -> None:
    b = await signed_in("lead")
    _, page = await b.get(f"/sla/channels/{world.care_channel}")
    assert "blank = 60" in page and "blank = 240" in page
    form = {"public_first_response": "30", "public_next_response": "20", "public_resolution": "",
            "private_first_response": "", "private_next_response": "", "private_resolution": "2880"}
    resp, _ = await b.post(f"/sla/channels/{world.care_channel}", form)
    assert resp.status == 303
    loaded = await world.core.channels.get(world.care_channel)
    assert loaded.info.sla_public_minutes == 30                   # ingest sees the new first-response target
    async with world.core.engine.connect() as conn:
        setup = await sla_policies.load_sla_setup(conn)
    public, private = setup.targets(world.care_channel, True), setup.targets(world.care_channel, False)
    assert (public.first_response, public.next_response, public.resolution) == (30, 20, 1440)
    assert (private.first_response, private.next_response, private.resolution) == (240, 240, 2880)
    [entry] = await audit.entries(world.core.engine, action="sla.policy")
    assert entry.before["public"] == {"first_response": None, "next_response": None, "resolution": None}
    assert entry.after["public"] == {"first_response": 30, "next_response": 20, "resolution": None}
    _, overview = await b.get("/sla")
    assert "30 / 20 / 1440" in overview and "240 / 240 / 2880" in overview


async def test_bad_targets_are_refused_in_words(signed_in, world) -> None:
    b = await signed_in("lead")
    await b.get(f"/sla/channels/{world.care_channel}")
    for value, words in (("-5", "is not a whole number"), ("0", "between 1 and"), ("999999", "between 1 and")):
        resp, page = await b.post(f"/sla/channels/{world.care_channel}", {"public_first_response": value})
        assert resp.status == 422 and words in page, value
    async with world.core.engine.connect() as conn:
        assert await conn.scalar(sa.select(channel_t.c.sla_public_minutes)
                                 .where(channel_t.c.id == world.care_channel)) is None
        assert (await conn.execute(sa.select(channel_sla_t))).all() == []


async def test_settings_forms_need_the_csrf_token(signed_in, world) -> None:
    b = await signed_in("lead")
    team = await team_of(world, world.care_channel)
    resp, _ = await b.post(f"/sla/teams/{team}", OFFICE_FORM, csrf=False)
    assert resp.status == 403
    assert await stored_calendars(world) == []


async def test_the_conversation_page_shows_its_sla_timeline(signed_in, world) -> None:
    wrote = utcnow() - minutes(90)
    await world.ingest(world.care_channel, [ev("message", "m-1", "cust-1", text="<b>hei</b>", at=wrote)])
    await world.ingest(world.care_channel, [ev("echo", "r-1", "cust-1", author="brand", is_self=True,
                                               at=wrote + minutes(12))])
    conv = await conversation_of(world.core, world.care_channel, "m-1")
    b = await signed_in("agent")
    _, page = await b.get(f"/conversations/{conv}")
    assert f'hx-get="/conversations/{conv}/sla"' in page
    resp, part = await b.get(f"/conversations/{conv}/sla")
    assert resp.status == 200
    assert 'data-kind="first_response" data-status="met"' in part
    assert "= 12 business minutes, target 240: met" in part and "Europe/Oslo" in part
    outsider = await signed_in("outsider")
    assert (await outsider.get(f"/conversations/{conv}/sla"))[0].status == 404


async def test_leads_see_a_banner_for_unassigned_public_posts_close_to_breach(signed_in, world) -> None:
    wrote = utcnow() - minutes(55)                                # 55 of 60 minutes used: past 80 %
    await world.ingest(world.care_channel, [ev("comment", "c-1", "post-1", public=True, text="Svar <nå>", at=wrote)])
    lead = await signed_in("lead")
    _, page = await lead.get("/")
    assert 'hx-get="/sla/alerts"' in page and 'hx-trigger="load, sse:inbox"' in page
    _, banner = await lead.get("/sla/alerts")
    assert "close to breaching" in banner and "Svar &lt;nå&gt;" in banner
    _, inbox = await lead.get("/inbox/list?tab=all")
    assert "Breaching soon" in inbox
    agent = await signed_in("agent")
    _, page = await agent.get("/")
    assert "/sla/alerts" not in page


async def test_the_banner_is_empty_when_nothing_is_close(signed_in, world) -> None:
    await world.ingest(world.care_channel, [ev("comment", "c-1", "post-1", public=True, at=utcnow() - timedelta(minutes=5))])
    lead = await signed_in("lead")
    _, banner = await lead.get("/sla/alerts")
    assert "close to breaching" not in banner


async def test_the_timeline_shows_a_pause_and_the_clock_it_resumed(signed_in, world) -> None:
    await world.ingest(world.care_channel, [ev("message", "m-1", "cust-1", at=utcnow() - minutes(30))])
    conv = await conversation_of(world.core, world.care_channel, "m-1")
    b = await signed_in("agent")
    await b.get(f"/conversations/{conv}")
    await b.post(f"/conversations/{conv}/pending")
    _, part = await b.get(f"/conversations/{conv}/sla")
    assert part.count("<li>paused ") == 2 and "resumed" not in part      # first response and resolution
    assert "waiting on customer since" in part
    await world.ingest(world.care_channel, [ev("message", "m-2", "cust-1", at=utcnow())])
    _, part = await b.get(f"/conversations/{conv}/sla")
    assert part.count(", resumed ") == 2 and 'data-status="running"' in part and "due " in part
