"""The error tree and the parsing of error bodies (the shared examples included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aiokeys
from aiokeys import (
    AiokeysError,
    ApiError,
    AuthenticationError,
    BadRequestError,
    BadRequestField,
    InvalidArgumentError,
    MissingCredentialsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TransportError,
)
from aiokeys._errors import (
    SNIPPET_LIMIT,
    error_class,
    error_from_payload,
    error_from_response,
    safe_snippet,
    scrub_bytes,
    scrub_error,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "examples"
URL = "https://cloud.mongodb.com/api/atlas/v2/orgs/0123456789abcdef01234567/aiModelApiKeys"


def parse(status: int, body: bytes, **kwargs: object) -> ApiError:
    return error_from_response(status, body, method="GET", url=URL, **kwargs)  # type: ignore[arg-type]


def example(name: str) -> bytes:
    path = EXAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path.read_bytes()


class TestTree:
    def test_every_public_error_is_an_aiokeys_error(self) -> None:
        """Everything in the tree hangs from AiokeysError."""
        # Classes only: the Literal alias OnError is a name, not an error.
        names = [
            n
            for n in aiokeys.__all__
            if n.endswith("Error") and isinstance(getattr(aiokeys, n), type)
        ]
        assert len(names) >= 13
        for name in names:
            assert issubclass(getattr(aiokeys, name), AiokeysError), name

    def test_argument_errors_are_value_errors(self) -> None:
        """Argument errors also subclass the builtin they mean."""
        assert issubclass(InvalidArgumentError, ValueError)
        assert issubclass(MissingCredentialsError, ValueError)
        assert not issubclass(ApiError, ValueError)

    def test_timeout_is_a_transport_error(self) -> None:
        """RequestTimeoutError sits under TransportError and knows its cause."""
        assert issubclass(RequestTimeoutError, TransportError)
        assert RequestTimeoutError("x").deadline_exceeded is False
        assert (
            RequestTimeoutError("x", deadline_exceeded=True).deadline_exceeded is True
        )

    def test_resume_attributes_default_to_none(self) -> None:
        """page_num and keys_yielded exist on every error."""
        for error in (TransportError("x"), parse(500, b"")):
            assert error.keys_yielded is None
        assert TransportError("x").page_num is None


class TestStatusPicksTheClass:
    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            (400, BadRequestError),
            (401, AuthenticationError),
            (403, PermissionDeniedError),
            (404, NotFoundError),
            (429, RateLimitError),
            (500, ServerError),
            (502, ServerError),
            (503, ServerError),
            (504, ServerError),
            (599, ServerError),
            (406, ApiError),
            (409, ApiError),
            (410, ApiError),
            (418, ApiError),
        ],
    )
    def test_class_by_status(self, status: int, cls: type[ApiError]) -> None:
        """One class per status, a plain ApiError for the rest."""
        assert error_class(status) is cls
        assert type(parse(status, b"")) is cls

    def test_body_does_not_decide(self) -> None:
        """An Atlas body saying 404 under HTTP 500 is still a ServerError."""
        body = json.dumps({"error": 404, "errorCode": "RESOURCE_NOT_FOUND"}).encode()
        error = parse(500, body)
        assert type(error) is ServerError
        assert error.status == 500
        assert error.error_code == "RESOURCE_NOT_FOUND"


class TestSharedExamples:
    @pytest.mark.parametrize(
        ("name", "cls", "code", "reason"),
        [
            (
                "error-401.json",
                AuthenticationError,
                "NOT_ORG_GROUP_CREATOR",
                "Unauthorized",
            ),
            (
                "error-403.json",
                PermissionDeniedError,
                "CANNOT_CHANGE_GROUP_NAME",
                "Forbidden",
            ),
            ("error-404.json", NotFoundError, "RESOURCE_NOT_FOUND", "Not Found"),
            (
                "error-500.json",
                ServerError,
                "UNEXPECTED_ERROR",
                "Internal Server Error",
            ),
        ],
    )
    def test_documented_examples(
        self, name: str, cls: type[ApiError], code: str, reason: str
    ) -> None:
        """Each documented example maps to its class with its Atlas fields."""
        body = example(name)
        expected = json.loads(body)
        error = parse(expected["error"], body, page_num=3)
        assert type(error) is cls
        assert error.error_code == code
        assert error.reason == reason
        assert error.detail == expected["detail"]
        assert error.parameters == ()
        assert error.body_snippet is None
        assert error.page_num == 3
        assert error.method == "GET"
        assert error.url == URL
        assert code in str(error)
        assert "(page 3)" in str(error)

    def test_token_bucket_429(self) -> None:
        """The 429 example keeps its mixed parameters and the header's wait."""
        error = parse(429, example("error-429.json"), retry_after=55.0)
        assert isinstance(error, RateLimitError)
        assert error.error_code == "RATE_LIMITED_TOKEN_BUCKET"
        assert error.parameters == ("api/atlas/v2/orgs", 55, 10, 5, 60)
        assert error.retry_after == 55.0
        assert "Refill rate" in (error.detail or "")


class TestAtlasFields:
    def test_bad_request_fields(self) -> None:
        """badRequestDetail.fields become BadRequestField values in the message."""
        body = {
            "error": 400,
            "errorCode": "INVALID_PARAMETER",
            "reason": "Bad Request",
            "detail": "Invalid itemsPerPage.",
            "parameters": ["itemsPerPage"],
            "badRequestDetail": {
                "fields": [
                    {"field": "itemsPerPage", "description": "must be <= 500"},
                    {"field": 3, "description": "wrong type, dropped"},
                    "not an object",
                ]
            },
        }
        error = parse(400, json.dumps(body).encode())
        assert isinstance(error, BadRequestError)
        assert error.bad_request_fields == (
            BadRequestField(field="itemsPerPage", description="must be <= 500"),
        )
        assert "itemsPerPage: must be <= 500" in str(error)

    def test_wrong_types_are_dropped(self) -> None:
        """A field of the wrong JSON type is left out, never crashes."""
        body = {
            "error": 404,
            "errorCode": 7,
            "reason": ["x"],
            "detail": None,
            "parameters": ["a", 1, 2.5, True, None, {"x": 1}],
            "badRequestDetail": "nope",
        }
        error = parse(404, json.dumps(body).encode())
        assert error.error_code is None
        assert error.reason is None
        assert error.detail is None
        assert error.parameters == ("a", 1, 2.5)
        assert error.bad_request_fields == ()

    def test_envelope_content(self) -> None:
        """error_from_payload reads an already decoded envelope content."""
        content = {"error": 403, "errorCode": "IP_ADDRESS_NOT_ON_ACCESS_LIST"}
        error = error_from_payload(403, content, method="GET", url=URL, page_num=2)
        assert isinstance(error, PermissionDeniedError)
        assert error.error_code == "IP_ADDRESS_NOT_ON_ACCESS_LIST"

    def test_envelope_content_missing(self) -> None:
        """An envelope without content still raises by its status."""
        error = error_from_payload(404, None, method="GET", url=URL)
        assert isinstance(error, NotFoundError)
        assert error.error_code is None
        assert error.reason == "Not Found"


class TestNotAtlasJson:
    def test_html_502(self) -> None:
        """A proxy's HTML page: ServerError, no code, the words kept."""
        body = (
            b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
            b"<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
        )
        error = parse(502, body)
        assert type(error) is ServerError
        assert error.error_code is None
        assert error.reason == "Bad Gateway"
        assert error.body_snippet == "502 Bad Gateway 502 Bad Gateway"
        assert "<" not in str(error)
        assert "\n" not in str(error)

    def test_empty_500(self) -> None:
        """An empty body: the status phrase, no snippet."""
        error = parse(500, b"")
        assert type(error) is ServerError
        assert error.error_code is None
        assert error.body_snippet is None
        assert str(error).startswith("500 Internal Server Error from GET ")

    def test_truncated_json(self) -> None:
        """Half an Atlas body is not Atlas JSON: the snippet keeps it."""
        error = parse(503, b'{"error": 503, "errorCode": "SERVICE_UNAVAI')
        assert type(error) is ServerError
        assert error.error_code is None
        assert error.body_snippet is not None
        assert error.body_snippet.startswith('{"error": 503')

    def test_json_that_is_not_an_atlas_error(self) -> None:
        """A JSON list or a foreign object is kept as a snippet."""
        error = parse(500, b'{"message": "upstream timeout"}')
        assert error.error_code is None
        assert error.body_snippet == '{"message": "upstream timeout"}'
        assert parse(500, b"[1, 2]").body_snippet == "[1, 2]"

    def test_invalid_utf8(self) -> None:
        """Undecodable bytes are replaced, not raised."""
        error = parse(502, b"\xff\xfe bad gateway \x00\x01")
        assert error.body_snippet is not None
        assert "bad gateway" in error.body_snippet
        assert "\x00" not in error.body_snippet

    @given(status=st.integers(300, 599), body=st.binary(max_size=300))
    def test_any_body_gives_the_status_class(self, status: int, body: bytes) -> None:
        """Whatever the body, the status's class comes back, nothing is raised."""
        error = parse(status, body)
        assert type(error) is error_class(status)
        assert error.status == status
        if error.body_snippet is not None:
            assert len(error.body_snippet) <= SNIPPET_LIMIT
            assert error.body_snippet.isprintable()


class TestSnippet:
    def test_long_text_is_cut(self) -> None:
        """At most SNIPPET_LIMIT characters, marked with an ellipsis."""
        snippet = safe_snippet("word " * 500)
        assert snippet is not None
        assert len(snippet) <= SNIPPET_LIMIT
        assert snippet.endswith("…")

    def test_blank_is_none(self) -> None:
        """Nothing printable, no snippet."""
        assert safe_snippet(" \r\n\t<br/> ") is None

    @given(st.text(max_size=500))
    def test_always_one_printable_line(self, text: str) -> None:
        """Any text becomes None or one short printable line."""
        snippet = safe_snippet(text)
        assert snippet is None or (
            snippet.isprintable() and len(snippet) <= SNIPPET_LIMIT
        )


class TestMessages:
    def test_repr_is_short(self) -> None:
        """The repr names class, status, code, URL and page, not the detail."""
        error = parse(404, example("error-404.json"), page_num=4)
        assert repr(error) == (
            f"NotFoundError(status=404, error_code='RESOURCE_NOT_FOUND', url={URL!r}, "
            "page_num=4)"
        )

    def test_server_text_cannot_forge_lines_or_drive_a_terminal(self) -> None:
        """Newlines and escapes in Atlas' detail are written as escapes."""
        body = json.dumps(
            {
                "error": 404,
                "errorCode": "NOT_FOUND\x1b[2J",
                "detail": "line1\nFAKE LOG LINE \x1b[31mred",
                "badRequestDetail": {
                    "fields": [{"field": "a\rb", "description": "c\x07d"}]
                },
            }
        ).encode()
        message = str(parse(404, body))
        assert message.isprintable()
        assert "line1\\nFAKE LOG LINE \\x1b[31mred" in message
        assert "NOT_FOUND\\x1b[2J" in message
        assert "a\\rb: c\\x07d" in message

    def test_retry_after_on_503(self) -> None:
        """A 503 keeps the server's Retry-After too."""
        assert parse(503, b"", retry_after=7.0).retry_after == 7.0


class TestScrub:
    SECRET = "tok-0123456789abcdef"

    def test_every_field_and_the_message(self) -> None:
        """detail, reason, parameters, fields and the message lose the secret."""
        body = json.dumps(
            {
                "error": 400,
                "errorCode": "INVALID",
                "reason": f"bad {self.SECRET}",
                "detail": f"header Bearer {self.SECRET} refused",
                "parameters": [self.SECRET, 3],
                "badRequestDetail": {
                    "fields": [{"field": self.SECRET, "description": self.SECRET}]
                },
            }
        ).encode()
        error = parse(400, body)
        scrub_error(error, [self.SECRET, ""])
        assert error.detail == "header Bearer *** refused"
        assert error.reason == "bad ***"
        assert error.parameters == ("***", 3)
        assert error.bad_request_fields == (
            BadRequestField(field="***", description="***"),
        )
        assert self.SECRET not in str(error)
        assert str(error).startswith("400 INVALID from GET")

    def test_chained_errors_and_plain_messages(self) -> None:
        """Aiokeys errors chained below are scrubbed too; twice changes nothing."""
        inner = TransportError(f"echo {self.SECRET}")
        outer = ServerError(status=502, method="GET", url=URL, detail=self.SECRET)
        outer.__cause__ = inner
        scrub_error(outer, [self.SECRET])
        scrub_error(outer, [self.SECRET])
        assert str(inner) == "echo ***"
        assert outer.detail == "***"

    def test_longest_secret_first(self) -> None:
        """A secret that contains another is replaced whole."""
        error = TransportError(f"Basic {self.SECRET}xyz")
        scrub_error(error, [self.SECRET, self.SECRET + "xyz"])
        assert str(error) == "Basic ***"

    @pytest.mark.parametrize("keep", [4, 8, 15])
    def test_a_cut_snippet_loses_the_start_of_a_secret(self, keep: int) -> None:
        """A snippet cut inside a secret keeps none of its first characters."""
        text = "x" * (SNIPPET_LIMIT - 1 - keep) + " " + self.SECRET + " tail"
        error = parse(502, f"<p>{text}</p>".encode())
        assert error.body_snippet is not None
        assert error.body_snippet.endswith(self.SECRET[: keep - 1] + "…")
        scrub_error(error, [self.SECRET])
        assert self.SECRET[:3] not in str(error)
        assert error.body_snippet.endswith("***…")

    def test_bytes(self) -> None:
        """An error body is scrubbed before any snippet is cut from it."""
        body = f"<p>Authorization: Bearer {self.SECRET}</p>".encode()
        assert scrub_bytes(body, [self.SECRET]) == b"<p>Authorization: Bearer ***</p>"

    def test_a_short_secret_only_where_it_stands_alone(self) -> None:
        """A test token like ``t`` leaves ``http`` alone but not ``Bearer t``."""
        error = TransportError("GET http://h/x: refused 'Bearer t' (t)")
        scrub_error(error, ["t"])
        assert str(error) == "GET http://h/x: refused 'Bearer ***' (***)"
        assert scrub_bytes(b"token t; tt", ["t"]) == b"token ***; tt"
