"""What the platform says about a channel's token reaches every admin page and `socialcrm check`."""

from __future__ import annotations

from datetime import timedelta

import httpx

from connectors.simulator import SimulatorConnector
from socialcrm import checks, health
from socialcrm.models import utcnow
from tests.support import add_team_and_channel
from tests.web.conftest import SignIn, World
from tests.web.test_admin_channel_settings import _admin


class ExpiringToken(SimulatorConnector):
    key = "expiring"

    async def platform_health(self):
        return {"token_valid": True, "token_expires_at": utcnow() + timedelta(days=3), "subscribed": False}


async def test_an_expiring_token_and_a_lost_subscription_show_on_every_admin_page(world: World,
                                                                                  signed_in: SignIn) -> None:
    health._platform_cache.clear()
    world.core.registry.add(ExpiringToken)
    await add_team_and_channel(world.core, "Care", "exp-1", connector="expiring")
    b = await _admin(world, signed_in)
    for page in ("/admin/channels", "/admin/users"):
        _, html = await b.get(page)
        assert "The token expires in 3 days" in html, page
        assert "not subscribed to this page&#39;s webhooks" in html or "not subscribed to this page's webhooks" in html


async def test_socialcrm_check_reports_the_expiring_token(world: World) -> None:
    world.core.registry.add(ExpiringToken)
    await add_team_and_channel(world.core, "Care", "exp-2", connector="expiring")
    import respx

    with respx.mock(assert_all_called=False) as mock:
        mock.route().mock(return_value=httpx.Response(200, json={"id": "brand"}))
        findings = await checks.check_channels(world.core.engine, world.core.registry, world.core.vault,
                                               world.core.http)
    problems = [f.message for f in findings if not f.ok]
    assert any("The token expires in 3 days" in p for p in problems), problems
