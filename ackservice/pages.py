"""The HTML side: the fleet page, an issue's page (and its modal fragment), /help, forms.

Every page is rendered by Jinja2 with autoescape on for every template; remote text
also goes through the ``remote`` filter (control and bidi characters dropped). Forms
POST with a token and are checked for their origin (:mod:`ackservice.csrf`). Redis
being away is said on the page with a 503, and an acknowledgement that could not be
stored says so and shows the note back: nothing is dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from ackservice.bodies import BodyError, read_body
from ackservice.csrf import origin_problem
from ackservice.detail import describe_event, fields_of, safe_link
from ackservice.overview import COLUMNS, STALE_AFTER_INTERVALS, issue_severity_of
from ackservice.service import (
    AckSavedUnread,
    AckService,
    BadNote,
    clean_note,
    format_time,
    issue_key_from_path,
    issue_path,
    parse_target,
)
from exporter.logs import event
from exporter.remote_text import printable
from exporter.severity import rules
from exporter.store import IssueKey, IssueNotOpen, IssueRecord, StoreError

__all__ = ["FORM_LIMIT_BYTES", "Pages", "make_templates"]

_LOG = logging.getLogger("mtarep.ackservice.pages")
TEMPLATES = Path(__file__).parent / "templates"
FORM_LIMIT_BYTES = 64 * 1024
_REMOTE_LIMIT = 20_000
_HISTORY = 50


def _remote(text: object) -> str:
    """Remote text for a page: control and bidi characters dropped (escaping is Jinja's)."""
    value = "" if text is None else str(text)
    if value.isascii() and value.isprintable() and len(value) <= _REMOTE_LIMIT:
        return value  # the common case, without a look at every character
    return printable(value, limit=_REMOTE_LIMIT)


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name
        auto_reload=False,  # the templates ship with the code: no stat per render
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = format_time
    env.filters["remote"] = _remote
    env.filters["issue_path"] = issue_path
    env.filters["safe_link"] = safe_link
    return Jinja2Templates(env=env)


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, at most :data:`FORM_LIMIT_BYTES`."""
    body = await read_body(
        request,
        "application/x-www-form-urlencoded",
        FORM_LIMIT_BYTES,
        "expected a form (application/x-www-form-urlencoded)",
    )
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise BodyError(400, "the form is not valid UTF-8") from None
    return dict(pairs)


def _local_next(value: str | None, fallback: str) -> str:
    """Where to go after a form: a path on this site only (never ``//elsewhere``)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return fallback


class Pages:
    """The HTML endpoints, around one :class:`AckService`."""

    def __init__(self, service: AckService, templates: Jinja2Templates) -> None:
        self.service = service
        self.templates = templates

    # -- rendering helpers ----------------------------------------------------------

    def _base(self, request: Request) -> dict[str, Any]:
        return {
            "user": request.state.user,
            "anonymous": self.service.config.ackservice.anonymous
            and self.service.config.http_auth_file is None,
            "notice": self.service.config.ackservice.notice,
        }

    def render(
        self, request: Request, name: str, context: Mapping[str, Any], status: int = 200
    ) -> Response:
        return self.templates.TemplateResponse(
            request, name, {**self._base(request), **context}, status_code=status
        )

    def error(
        self,
        request: Request,
        status: int,
        title: str,
        message: str,
        *,
        note: str | None = None,
        back: str = "/",
    ) -> Response:
        fragment = request.query_params.get("fragment") == "1"
        context = {"title": title, "message": message, "note": note, "back": back}
        name = "_error.html" if fragment else "error.html"
        return self.render(request, name, context, status)

    def _unavailable(self, request: Request, error: StoreError, what: str) -> Response:
        event(_LOG, "page.store_unavailable", logging.WARNING, page=what, error=str(error))
        return self.error(
            request,
            503,
            "Redis is unavailable",
            f"{what} cannot be shown: {error}. Reload in a moment.",
        )

    # -- GET ----------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        try:
            overview = await self.service.overview()
            token = await self.service.csrf.token(request.state.user)
        except StoreError as error:
            return self._unavailable(request, error, "The issues")
        config = self.service.config
        now = self.service.clock()
        newest = overview.newest_update
        return self.render(
            request,
            "index.html",
            {
                "overview": overview,
                "columns": COLUMNS,
                "csrf": token,
                "now": now,
                "newest": newest,
                "minutes_ago": None if newest is None else max(0, round((now - newest) / 60)),
                "stale_after_minutes": round(STALE_AFTER_INTERVALS * config.interval / 60),
            },
        )

    async def help(self, request: Request) -> Response:
        config = self.service.config
        return self.render(
            request,
            "help.html",
            {
                "rules": rules(config.thresholds),
                "thresholds": config.thresholds,
                "interval_minutes": round(config.interval / 60),
                "stale_after_minutes": round(STALE_AFTER_INTERVALS * config.interval / 60),
                "alertmanager": config.ackservice.alertmanager_url is not None,
            },
        )

    async def issue(self, request: Request) -> Response:
        params = request.path_params
        where, kind, subject = params["ip"], params["kind"], params["subject"]
        fragment = request.query_params.get("fragment") == "1"
        if parse_target(where) is None:
            if kind == "provider":
                return await self._host_provider(request, where, subject, fragment)
            return self.error(request, 404, "No such issue", f"{where!r} is not an IP address.")
        try:
            key = issue_key_from_path(where, kind, subject)
        except ValueError as error:
            return self.error(request, 404, "No such issue", str(error))
        try:
            record = await self.service.store.issue(key)
            history = await self.service.store.events(limit=_HISTORY, key=key)
            token = await self.service.csrf.token(request.state.user)
        except StoreError as error:
            return self._unavailable(request, error, "This issue")
        events = [describe_event(entry) for entry in history]
        if record is None:
            name = "_not_open.html" if fragment else "not_open.html"
            return self.render(request, name, {"key": key, "events": events}, 404)
        context = self._issue_context(record, events, token, next_path="/" if fragment else None)
        return self.render(request, "_issue.html" if fragment else "issue.html", context)

    def _issue_context(
        self,
        record: IssueRecord,
        events: list[dict[str, str]],
        token: str,
        next_path: str | None,
    ) -> dict[str, Any]:
        path = issue_path(record.key)
        return {
            "record": record,
            "path": path,
            "severity": issue_severity_of(record, self.service.config),
            "fields": fields_of(record),
            "removal_link": safe_link(record.detail.get("removal_link")),
            "assistance_link": safe_link(record.detail.get("assistance_link")),
            "events": events,
            "csrf": token,
            "next": next_path or path,
            "silence": self.service.silence_of(record.key),
            "alertmanager": self.service.silencer is not None,
        }

    async def _host_provider(
        self, request: Request, host: str, provider: str, fragment: bool
    ) -> Response:
        """``/issues/{host}/provider/{provider}``: that host's open blocks of ``provider``."""
        try:
            records = [
                record
                for record in await self.service.store.open_issues(host=host)
                if record.key.kind == "provider" and record.key.subject == provider
            ]
            recent = [] if records else await self.service.store.events(limit=2000)
        except StoreError as error:
            return self._unavailable(request, error, "This host's provider blocks")
        suffix = "?fragment=1" if fragment else ""
        if len(records) == 1:
            return RedirectResponse(issue_path(records[0].key) + suffix, status_code=302)
        if records:
            listing = {"host": host, "provider": provider, "records": records}
            return self.render(request, "host_issues.html", listing)
        events = [
            describe_event(entry)
            for entry in recent
            if entry.host == host and entry.kind == "provider" and entry.subject == provider
        ][:_HISTORY]
        name = "_not_open.html" if fragment else "not_open.html"
        context: dict[str, Any] = {
            "key": None,
            "host": host,
            "provider": provider,
            "events": events,
        }
        return self.render(request, name, context, 404)

    # -- POST -----------------------------------------------------------------------------

    async def _checked_form(self, request: Request) -> tuple[IssueKey, dict[str, str]] | Response:
        """The issue and the form of a POST that passed the origin and token checks."""
        params = request.path_params
        problem = origin_problem(request, self.service.config.ackservice.url, header_required=True)
        if problem is not None:
            event(_LOG, "form.refused", logging.WARNING, user=request.state.user, problem=problem)
            return self.error(request, 403, "Refused", f"{problem}: nothing was changed.")
        try:
            form = await read_form(request)
        except BodyError as error:
            return self.error(request, error.status, "Not a valid form", str(error))
        try:
            key = issue_key_from_path(params["ip"], params["kind"], params["subject"])
        except ValueError as error:
            return self.error(request, 404, "No such issue", str(error))
        try:
            valid = await self.service.csrf.valid(request.state.user, form.get("csrf", ""))
        except StoreError as error:
            return self.error(
                request,
                503,
                "Redis is unavailable: nothing was saved",
                f"The form could not be checked: {error}. "
                "Nothing was changed; try again in a moment.",
                note=form.get("note"),
                back=issue_path(key),
            )
        if not valid:
            event(_LOG, "form.bad_token", logging.WARNING, user=request.state.user)
            return self.error(
                request,
                403,
                "Refused: the form token is missing or wrong",
                "Nothing was changed. Reload the page and try again.",
                note=form.get("note"),
                back=issue_path(key),
            )
        return key, form

    async def acknowledge(self, request: Request) -> Response:
        checked = await self._checked_form(request)
        if isinstance(checked, Response):
            return checked
        key, form = checked
        user = request.state.user
        try:
            note = clean_note(form.get("note"))
        except BadNote as error:
            return self.error(
                request, 400, "The note cannot be saved", str(error), note=form.get("note")
            )
        try:
            await self.service.acknowledge(key, user, note)
        except AckSavedUnread as error:
            event(
                _LOG, "ack.saved_unread", logging.WARNING, issue=key.id, user=user, error=str(error)
            )
            return self.error(
                request,
                503,
                "Your acknowledgement was saved",
                f"but the issue could not be read back to show it: {error}. Reload in a moment.",
                back=issue_path(key),
            )
        except IssueNotOpen:
            return self.error(
                request,
                404,
                "This issue is not open",
                f"{key} is not open any more (it cleared, or never opened): "
                "there is nothing to acknowledge.",
                back=issue_path(key),
            )
        except StoreError as error:
            event(_LOG, "ack.not_saved", logging.ERROR, issue=key.id, user=user, error=str(error))
            return self.error(
                request,
                503,
                "Your acknowledgement was NOT saved",
                f"Redis is unavailable: {error}. Nobody else can see it; try again in a moment.",
                note=note,
                back=issue_path(key),
            )
        event(_LOG, "ack.saved", issue=key.id, user=user)
        return RedirectResponse(_local_next(form.get("next"), issue_path(key)), status_code=303)

    async def withdraw(self, request: Request) -> Response:
        checked = await self._checked_form(request)
        if isinstance(checked, Response):
            return checked
        key, form = checked
        user = request.state.user
        try:
            await self.service.withdraw(key, user)
        except StoreError as error:
            event(_LOG, "unack.not_saved", logging.ERROR, issue=key.id, user=user, error=str(error))
            return self.error(
                request,
                503,
                "The acknowledgement was NOT withdrawn",
                f"Redis is unavailable: {error}. Try again in a moment.",
                back=issue_path(key),
            )
        event(_LOG, "unack.saved", issue=key.id, user=user)
        return RedirectResponse(_local_next(form.get("next"), issue_path(key)), status_code=303)
