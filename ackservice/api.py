"""The JSON API: the old tool's per-host answer, every host, the open issues, acks.

Answers are ``{"success": ...}`` or ``{"error": "..."}`` (with a 4xx/5xx status), as
the old tool's were. ``GET /api/{fqdn}`` keeps the old per-IP fields and their value
conventions (see :meth:`ackservice.overview.Row.legacy_fields`) and adds the full
stored state and the open issues (with acknowledgements) of each IP. POST and DELETE
need ``Content-Type: application/json`` (a page elsewhere cannot send that without a
CORS preflight, which is never granted) and pass the same Origin check as forms.
:mod:`ackservice.openapi` describes every route.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ackservice.bodies import BodyError, read_body
from ackservice.csrf import origin_problem
from ackservice.openapi import document
from ackservice.overview import Row
from ackservice.service import (
    AckSavedUnread,
    AckService,
    BadNote,
    clean_note,
    issue_key_from_path,
)
from exporter.logs import event
from exporter.store import IssueNotOpen, StoreError

__all__ = ["JSON_LIMIT_BYTES", "Api"]

_LOG = logging.getLogger("mtarep.ackservice.api")
JSON_LIMIT_BYTES = 64 * 1024


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _unavailable(error: StoreError) -> JSONResponse:
    return _error(503, f"Redis unavailable: {error}")


class Api:
    """The ``/api/...`` endpoints, around one :class:`AckService`."""

    def __init__(self, service: AckService) -> None:
        self.service = service

    def _ip_json(self, row: Row) -> dict[str, Any]:
        return {
            **row.legacy_fields(),
            "ip": row.ip,
            "alias": row.alias,
            "status": row.status(),
            "updated_at": row.updated_at,
            "stale": row.stale,
            "state": row.stored,
            "issues": [self.service.issue_json(record) for record in row.issues],
        }

    def _hosts_json(self, rows: tuple[Row, ...]) -> dict[str, dict[str, Any]]:
        hosts: dict[str, dict[str, Any]] = {}
        for row in rows:
            hosts.setdefault(row.host, {})[row.ip] = self._ip_json(row)
        return hosts

    async def host(self, request: Request) -> JSONResponse:
        fqdn = str(request.path_params["fqdn"]).lower().rstrip(".")
        try:
            overview = await self.service.overview(host=fqdn)
        except StoreError as error:
            return _unavailable(error)
        rows = tuple(row for row in overview.rows if row.host.lower() == fqdn)
        if not rows:
            return _error(404, f"unknown host {fqdn!r}: mtarep has no results for it")
        return JSONResponse({"success": self._hosts_json(rows)[rows[0].host]})

    async def all_hosts(self, request: Request) -> JSONResponse:
        try:
            overview = await self.service.overview()
        except StoreError as error:
            return _unavailable(error)
        return JSONResponse({"success": self._hosts_json(overview.rows)})

    async def issues(self, request: Request) -> JSONResponse:
        try:
            records = await self.service.store.open_issues()
        except StoreError as error:
            return _unavailable(error)
        return JSONResponse({"success": [self.service.issue_json(r) for r in records]})

    async def openapi(self, request: Request) -> JSONResponse:
        return JSONResponse(document())

    async def _body(self, request: Request) -> dict[str, Any] | JSONResponse:
        problem = origin_problem(request, self.service.config.ackservice.url, header_required=False)
        if problem is not None:
            event(_LOG, "api.refused", logging.WARNING, user=request.state.user, problem=problem)
            return _error(403, f"{problem}: nothing was changed")
        try:
            raw = await read_body(
                request, "application/json", JSON_LIMIT_BYTES, "send Content-Type: application/json"
            )
        except BodyError as error:
            return _error(error.status, str(error))
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "the body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, 'the body must be a JSON object like {"note": "..."}')
        return body

    async def acknowledge(self, request: Request) -> JSONResponse:
        body = await self._body(request)
        if isinstance(body, JSONResponse):
            return body
        params = request.path_params
        try:
            key = issue_key_from_path(params["ip"], params["kind"], params["subject"])
            note = clean_note(body.get("note"))
        except BadNote as error:
            return _error(400, str(error))
        except ValueError as error:
            return _error(404, str(error))
        user = request.state.user
        try:
            record, _ = await self.service.acknowledge(key, user, note)
        except AckSavedUnread as error:
            event(
                _LOG, "ack.saved_unread", logging.WARNING, issue=key.id, user=user, error=str(error)
            )
            return _error(
                503, f"the acknowledgement was saved, but reading the issue back failed: {error}"
            )
        except IssueNotOpen:
            return _error(404, f"issue {key} is not open: nothing to acknowledge")
        except StoreError as error:
            event(_LOG, "ack.not_saved", logging.ERROR, issue=key.id, user=user, error=str(error))
            return _error(503, f"the acknowledgement was NOT saved: Redis unavailable: {error}")
        event(_LOG, "ack.saved", issue=key.id, user=user, via="api")
        return JSONResponse({"success": self.service.issue_json(record)})

    async def withdraw(self, request: Request) -> JSONResponse:
        body = await self._body(request)
        if isinstance(body, JSONResponse):
            return body
        params = request.path_params
        try:
            key = issue_key_from_path(params["ip"], params["kind"], params["subject"])
        except ValueError as error:
            return _error(404, str(error))
        user = request.state.user
        try:
            removed = await self.service.withdraw(key, user)
        except StoreError as error:
            event(_LOG, "unack.not_saved", logging.ERROR, issue=key.id, user=user, error=str(error))
            return _error(503, f"the acknowledgement was NOT withdrawn: Redis unavailable: {error}")
        event(_LOG, "unack.saved", issue=key.id, user=user, via="api")
        return JSONResponse({"success": {"id": key.id, "withdrawn": removed}})
