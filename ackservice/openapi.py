"""The OpenAPI 3.1 document of the JSON API, served at ``/api/openapi.json``.

Written by hand, next to :mod:`ackservice.api`; the tests check that every ``/api``
route of the app is described here and that real answers validate against it.
"""

from __future__ import annotations

import copy
from typing import Any

from exporter import __version__
from exporter.store import ISSUE_KINDS

__all__ = ["document"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _success(schema: dict[str, Any], description: str) -> dict[str, Any]:
    wrapped = {
        "type": "object",
        "required": ["success"],
        "properties": {"success": schema},
        "additionalProperties": False,
    }
    return _json(wrapped, description)


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_UNAUTHORIZED = {"description": "Login required (HTTP Basic)"}
_UNAVAILABLE = _error("Redis is unavailable: nothing was read or changed")

_ISSUE_PARAMETERS = [
    {
        "name": "ip",
        "in": "path",
        "required": True,
        "description": "The IP address (IPv6 with its colons, or percent-encoded)",
        "schema": {"type": "string"},
    },
    {
        "name": "kind",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": sorted(ISSUE_KINDS)},
    },
    {
        "name": "subject",
        "in": "path",
        "required": True,
        "description": "The zone, provider, check, source, or SNDS subject",
        "schema": {"type": "string"},
    },
]

_CHANGE_REFUSED = {
    "403": _error("Cross-site request refused (Origin or Referer names another site)"),
    "404": _error("The issue is not open (or the path names no issue)"),
    "415": _error("The request is not Content-Type: application/json"),
    "503": _UNAVAILABLE,
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
        "additionalProperties": False,
    },
    "Ack": {
        "type": "object",
        "required": ["user", "at", "note"],
        "properties": {
            "user": {"type": "string"},
            "at": {"type": "number", "description": "Unix seconds"},
            "note": {"type": "string"},
        },
        "additionalProperties": False,
    },
    "Silence": {
        "type": "object",
        "description": "The Alertmanager silence of an acknowledged issue, as last seen",
        "required": ["id", "ends_at", "error"],
        "properties": {
            "id": {"type": ["string", "null"]},
            "ends_at": {"type": ["number", "null"]},
            "error": {"type": "string", "description": "Why there is none; empty when there is"},
        },
        "additionalProperties": False,
    },
    "Issue": {
        "type": "object",
        "required": [
            "id",
            "url",
            "host",
            "ip",
            "kind",
            "subject",
            "severity",
            "summary",
            "first_seen",
            "last_seen",
            "detail",
            "ack",
            "silence",
        ],
        "properties": {
            "id": {"type": "string", "description": "{ip}:{kind}:{subject}, percent-encoded"},
            "url": {"type": "string", "description": "The issue's page, a path on this service"},
            "host": {"type": "string"},
            "ip": {"type": "string"},
            "kind": {"type": "string", "enum": sorted(ISSUE_KINDS)},
            "subject": {"type": "string"},
            "severity": {"type": "string", "enum": ["warning", "error"]},
            "summary": {"type": "string"},
            "first_seen": {"type": "number"},
            "last_seen": {"type": "number"},
            "detail": {
                "type": "object",
                "description": "The kind's fields (exporter/issues.py), remote text verbatim",
            },
            "ack": {"oneOf": [_ref("Ack"), {"type": "null"}]},
            "silence": {"oneOf": [_ref("Silence"), {"type": "null"}]},
        },
        "additionalProperties": False,
    },
    "IpResult": {
        "type": "object",
        "description": "One IP: the old tool's fields, then mtarep's full detail",
        "required": [
            "hostname",
            "dns",
            "senderscore",
            "sndscolor",
            "sndstraps",
            "brightmail",
            "provblocks",
            "listings",
            "ip",
            "alias",
            "status",
            "updated_at",
            "stale",
            "state",
            "issues",
        ],
        "properties": {
            "hostname": {"type": "string"},
            "dns": {
                "type": ["boolean", "null"],
                "description": "PTR, forward and HELO all match; null when unknown",
            },
            "senderscore": {
                "oneOf": [
                    {"type": "integer", "minimum": 0, "maximum": 100},
                    {"type": "string", "enum": ["no score", "unknown"]},
                ]
            },
            "sndscolor": {
                "type": "string",
                "enum": ["green", "yellow", "red", "no data", "unknown"],
            },
            "sndstraps": {
                "oneOf": [
                    {"type": "integer", "minimum": 0},
                    {"type": "string", "enum": ["no data", "unknown"]},
                ]
            },
            "brightmail": {
                "type": "string",
                "enum": ["good", "neutral", "bad", "no data", "unknown"],
                "description": "The rating of the first reputation source",
            },
            "provblocks": {
                "type": "string",
                "description": "'no blocks', 'no data', 'unknown', or provider names joined by ','",
            },
            "listings": {
                "type": "string",
                "description": "'unlisted', 'unknown', or zones joined by ','",
            },
            "ip": {"type": "string"},
            "alias": {"type": "string"},
            "status": {"type": "string", "enum": ["ok", "unknown", "warning", "error"]},
            "updated_at": {"type": ["number", "null"]},
            "stale": {"type": "boolean"},
            "state": {
                "type": ["object", "null"],
                "description": "The stored per-IP state (TargetState in exporter/snapshot.py)",
            },
            "issues": {"type": "array", "items": _ref("Issue")},
        },
        "additionalProperties": False,
    },
    "HostResult": {
        "type": "object",
        "description": "IP address -> its result",
        "additionalProperties": _ref("IpResult"),
    },
    "AckRequest": {
        "type": "object",
        "properties": {"note": {"type": "string", "maxLength": 1000}},
        "additionalProperties": True,
    },
}


def document() -> dict[str, Any]:
    """A fresh copy of the document (callers may change theirs)."""
    return copy.deepcopy(_document())


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mtarep ackservice API",
            "version": __version__,
            "description": "Reputation of the monitored MTAs, their open issues, and "
            "acknowledgements. Every route needs a login (HTTP Basic) unless the "
            "service runs with ackservice.anonymous.",
        },
        "security": [{"basic": []}],
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
            "schemas": _SCHEMAS,
        },
        "paths": {
            "/api/all": {
                "get": {
                    "summary": "Every host, by FQDN",
                    "operationId": "allHosts",
                    "responses": {
                        "200": _success(
                            {"type": "object", "additionalProperties": _ref("HostResult")},
                            "Host FQDN -> its IPs",
                        ),
                        "401": _UNAUTHORIZED,
                        "503": _UNAVAILABLE,
                    },
                }
            },
            "/api/issues": {
                "get": {
                    "summary": "The open issues, oldest first",
                    "operationId": "openIssues",
                    "responses": {
                        "200": _success(
                            {"type": "array", "items": _ref("Issue")}, "The open issues"
                        ),
                        "401": _UNAUTHORIZED,
                        "503": _UNAVAILABLE,
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {
                        "200": _json({"type": "object"}, "The OpenAPI document"),
                        "401": _UNAUTHORIZED,
                    },
                }
            },
            "/api/{fqdn}": {
                "get": {
                    "summary": "One host (the old tool's per-host answer, plus detail)",
                    "operationId": "host",
                    "parameters": [
                        {
                            "name": "fqdn",
                            "in": "path",
                            "required": True,
                            "description": "The host's public FQDN, as in mta_map",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _success(_ref("HostResult"), "The host's IPs"),
                        "401": _UNAUTHORIZED,
                        "404": _error("mtarep has no results for this host"),
                        "503": _UNAVAILABLE,
                    },
                }
            },
            "/api/issues/{ip}/{kind}/{subject}/ack": {
                "parameters": _ISSUE_PARAMETERS,
                "post": {
                    "summary": "Acknowledge an open issue (the logged-in user, now, a note)",
                    "operationId": "acknowledge",
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref("AckRequest")}},
                    },
                    "responses": {
                        "200": _success(_ref("Issue"), "The issue, acknowledged"),
                        "400": _error("The body is not a JSON object, or the note is too long"),
                        "401": _UNAUTHORIZED,
                        **_CHANGE_REFUSED,
                    },
                },
                "delete": {
                    "summary": "Withdraw the acknowledgement of an issue",
                    "operationId": "withdraw",
                    "responses": {
                        "200": _success(
                            {
                                "type": "object",
                                "required": ["id", "withdrawn"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "withdrawn": {
                                        "type": "boolean",
                                        "description": "false: it was not acknowledged",
                                    },
                                },
                                "additionalProperties": False,
                            },
                            "Withdrawn (or there was nothing to withdraw)",
                        ),
                        "401": _UNAUTHORIZED,
                        **{code: r for code, r in _CHANGE_REFUSED.items() if code != "404"},
                        "404": _error("The path names no issue"),
                    },
                },
            },
        },
    }
