"""Building answers: Atlas error bodies, ``envelope=true`` and ``pretty=true``.

Every answer of the Atlas API paths goes through a :class:`Renderer`, made per
request from its flags, so the two documented query flags behave the same on
every endpoint and every error.

Error bodies carry ``error``, ``errorCode``, ``reason`` and ``detail``, and
``badRequestDetail.fields`` for a 400. They carry no ``parameters``: the
published schema types its items as objects while Atlas puts strings and
numbers there, and every answer of the simulator must validate against the
schema, so the values are spelled out in ``detail`` instead.
"""

from __future__ import annotations

import http
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
from aiohttp import web

from ._store import dumps

__all__ = ["ERROR_CODES", "JSON_TYPE", "Renderer", "error_body", "html_page"]

JSON_TYPE: Final = "application/json"

#: A plausible Atlas ``errorCode`` for a status when the caller names none.
ERROR_CODES: Final[Mapping[int, str]] = {
    400: "INVALID_PARAMETER",
    401: "UNAUTHORIZED",
    403: "USER_UNAUTHORIZED",
    404: "RESOURCE_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "INVALID_VERSION",
    409: "DUPLICATE_KEY",
    410: "VERSION_GONE",
    429: "RATE_LIMITED_TOKEN_BUCKET",
    500: "UNEXPECTED_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_body(
    status: int,
    error_code: str | None = None,
    detail: str | None = None,
    *,
    fields: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """An Atlas error body; ``fields`` become ``badRequestDetail.fields``."""
    body: dict[str, Any] = {
        "error": status,
        "errorCode": error_code or ERROR_CODES.get(status, "UNEXPECTED_ERROR"),
        "reason": _reason(status),
        "detail": detail or _reason(status),
    }
    if fields:
        body["badRequestDetail"] = {
            "fields": [{"field": name, "description": text} for name, text in fields]
        }
    return body


def html_page(status: int) -> str:
    """The kind of page a reverse proxy sends when Atlas is unreachable."""
    title = f"{status} {_reason(status)}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


@attrs.frozen(kw_only=True)
class Renderer:
    """Turns bodies into responses for one request's ``envelope``/``pretty``.

    Attributes:
        content_type: The versioned media type success bodies are labelled with.
        envelope: Wrap as documented: lists gain ``status``, a resource becomes
            ``{"status", "content"}``, and an error is sent as HTTP 200 with
            ``{"status": <error>, "content": <error body>}`` (our choice).
        pretty: Indent the JSON (whitespace only).
    """

    content_type: str
    envelope: bool = False
    pretty: bool = False

    def _encode(self, value: Any) -> bytes:
        if self.pretty:
            return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()
        return dumps(value)

    def page(self, parts: Sequence[bytes], tail: Mapping[str, Any]) -> web.Response:
        """A list page from ``{"links", "results"}`` parts, plus ``tail`` fields.

        ``parts`` is ``(links_json, result_1, result_2, ...)``, already encoded,
        so the hot path only joins bytes.
        """
        extra = dict(tail)
        if self.envelope:
            extra["status"] = 200
        body = b"".join(
            (
                b'{"links":',
                parts[0],
                b',"results":[',
                b",".join(parts[1:]),
                b"]",
                *(
                    b"," + dumps(name) + b":" + dumps(value)
                    for name, value in extra.items()
                ),
                b"}",
            )
        )
        if self.pretty:
            body = self._encode(json.loads(body))
        return self._response(200, body, self.content_type)

    def resource(self, status: int, value: Mapping[str, Any] | None) -> web.Response:
        """A single resource (``None``: no content, as a delete answers)."""
        if self.envelope:
            wrapped: dict[str, Any] = {"status": status}
            if value is not None:
                wrapped["content"] = value
            return self._response(200, self._encode(wrapped), self.content_type)
        if value is None:
            return web.Response(status=status)
        return self._response(status, self._encode(value), self.content_type)

    def error(
        self,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        wrap: bool = True,
    ) -> web.Response:
        """An Atlas error; ``wrap=False`` never envelopes (e.g. a 401 challenge)."""
        status = int(body["error"])
        if self.envelope and wrap:
            payload = self._encode({"status": status, "content": body})
            response = self._response(200, payload, JSON_TYPE)
        else:
            response = self._response(status, self._encode(body), JSON_TYPE)
        if headers:
            response.headers.extend(headers)
        return response

    @staticmethod
    def _response(status: int, body: bytes, content_type: str) -> web.Response:
        return web.Response(
            status=status, body=body, headers={"Content-Type": content_type}
        )
