"""operator.login.bounded: at most N API requests in flight, watches never counted.

A local aiohttp server counts the requests it is serving at once; each answer waits a little
so that requests overlap. Watches (`?watch=true`) hold their slot-free connection open while
ordinary requests run, as Kopf's watch streams do, so a growing number of watched namespaces
can never starve the patches (the first version, a plain connection limit, did).
"""

from __future__ import annotations

import asyncio

from aiohttp import ClientSession, web

from controller.operator.login import bounded


async def serve_and_count(limit: int, requests: int, watches: int) -> tuple[int, int]:
    """(the most ordinary requests served at once, the watches open while they ran)."""
    state = {"now": 0, "most": 0, "watching": 0, "watching_seen": 0}
    release_watches = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        if request.query.get("watch") == "true":
            state["watching"] += 1
            await release_watches.wait()
            state["watching"] -= 1
            return web.Response(text="{}")
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        state["watching_seen"] = max(state["watching_seen"], state["watching"])
        await asyncio.sleep(0.02)
        state["now"] -= 1
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with ClientSession(trace_configs=[bounded(limit)]) as session:

            async def get(path: str) -> None:
                async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                    await response.read()

            streams = [asyncio.create_task(get("/w?watch=true")) for _ in range(watches)]
            while state["watching"] < watches:
                await asyncio.sleep(0.01)
            await asyncio.wait_for(asyncio.gather(*(get(f"/o{i}") for i in range(requests))), 10)
            release_watches.set()
            await asyncio.gather(*streams)
    finally:
        await runner.cleanup()
    return state["most"], state["watching_seen"]


def test_at_most_the_limit_of_requests_run_at_once() -> None:
    most, _ = asyncio.run(serve_and_count(limit=4, requests=40, watches=0))
    assert most == 4


def test_watches_beyond_the_limit_never_block_ordinary_requests() -> None:
    most, watching = asyncio.run(serve_and_count(limit=3, requests=20, watches=10))
    assert watching == 10  # all ten watches stayed open while the requests were served
    assert most == 3
