import time
from tests.tui.test_approval import *
from tests.tui import test_approval as T
async def test_timed(live_agent):
    t0=time.monotonic()
    app = live_agent.app(role=Role.deployer)
    run = live_agent.seeded.runs["pay-approval"]
    async with app.run_test(size=(80, 24)) as pilot:
        modal = await T._open_modal(app, pilot); print("open", time.monotonic()-t0)
        await pilot.press("a")
        await wait_for(pilot, lambda: not isinstance(app.screen, ApprovalModal), "dismissal"); print("dismissed", time.monotonic()-t0)
        await wait_for(pilot, lambda: not app.screen.rows["payments"].pending_approval, "x"); print("panel", time.monotonic()-t0)
    print("exited", time.monotonic()-t0)
    with live_agent.http() as http:
        print(http.get(f"/api/v1/runs/{run}").json()["status"], time.monotonic()-t0)
