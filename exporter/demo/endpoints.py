"""The demo's Microsoft SNDS and HTTP reputation services, on loopback.

``/snds/data.aspx?key=`` and ``/snds/ipStatus.aspx?key=`` answer as SNDS does (CSV,
yesterday's data; a wrong key gets 401), ``/reputation/{ip}.json`` answers in the
old Brightmail shape (``{"entityRecord": {"rep": "good"}}``; 404 for an IP it does
not know).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from exporter.demo.world import SNDS_KEY, reputation_of, snds_data, snds_status

__all__ = ["endpoints_app"]


def endpoints_app() -> Starlette:
    def keyed(request: Request) -> bool:
        return request.query_params.get("key") == SNDS_KEY

    async def data(request: Request) -> Response:
        if not keyed(request):
            return PlainTextResponse("Unauthorized", status_code=401)
        return PlainTextResponse(snds_data(datetime.fromtimestamp(time.time(), UTC)))

    async def status(request: Request) -> Response:
        if not keyed(request):
            return PlainTextResponse("Unauthorized", status_code=401)
        return PlainTextResponse(snds_status())

    async def reputation(request: Request) -> Response:
        ip = request.path_params["ip"]
        rating = reputation_of(ip)
        if rating is None:
            return JSONResponse({"error": "unknown ip"}, status_code=404)
        return JSONResponse({"entityRecord": {"ip": ip, "rep": rating}})

    return Starlette(
        routes=[
            Route("/snds/data.aspx", data),
            Route("/snds/ipStatus.aspx", status),
            Route("/reputation/{ip}.json", reputation),
        ]
    )
