"""Credentials without a network: validation, reprs, environment parsing, parsers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aiokeys
from aiokeys import (
    BearerToken,
    DigestAuth,
    EnvCredentials,
    InvalidArgumentError,
    MissingCredentialsError,
    ServiceAccount,
    auth_from_env,
)
from aiokeys._auth import validate_base_url
from aiokeys._env import DEFAULT_BASE_URL
from aiokeys._oauth import _parse_token, renew_margin

SECRET = "s3cr3t-planted-value"


class TestCredentialValues:
    def test_reprs_show_only_the_public_part(self) -> None:
        """No secret reaches repr or str; the public part does."""
        creds = [
            DigestAuth("PUBKEY", SECRET),
            ServiceAccount("mdb_sa_id_x", SECRET, revoke_on_close=True),
            BearerToken(SECRET),
        ]
        for cred in creds:
            assert SECRET not in repr(cred)
            assert SECRET not in str(cred)
        assert "PUBKEY" in repr(creds[0])
        assert "mdb_sa_id_x" in repr(creds[1])

    @pytest.mark.parametrize(
        "build",
        [
            lambda: DigestAuth("", "x"),
            lambda: DigestAuth("p", ""),
            lambda: DigestAuth("a:b", "x"),
            lambda: DigestAuth("p", "x\r\nX-Evil: 1"),
            lambda: ServiceAccount("id", ""),
            lambda: ServiceAccount("", "secret"),
            lambda: ServiceAccount("id", "secret", revoke_on_close="yes"),  # type: ignore[arg-type]
            lambda: BearerToken(""),
            lambda: BearerToken(None),  # type: ignore[arg-type]
        ],
    )
    def test_bad_values_are_refused_at_construction(self, build: object) -> None:
        """Empty parts, ':' in a user name, line breaks and wrong types are refused."""
        with pytest.raises(InvalidArgumentError):
            build()  # type: ignore[operator]

    @pytest.mark.parametrize("char", ["\x00", "\x0b", "\x1f", "\x7f", "\t", "\x1b"])
    @pytest.mark.parametrize(
        ("build", "field"),
        [
            (lambda v: BearerToken(v), "BearerToken.token"),
            (lambda v: DigestAuth(v, "priv"), "DigestAuth.public_key"),
            (lambda v: DigestAuth("pub", v), "DigestAuth.private_key"),
            (lambda v: ServiceAccount(v, "secret"), "ServiceAccount.client_id"),
            (lambda v: ServiceAccount("id", v), "ServiceAccount.client_secret"),
        ],
    )
    def test_control_characters_are_refused(
        self, build: Callable[[str], object], field: str, char: str
    ) -> None:
        """Any C0 control or DEL is refused at construction, naming the field only."""
        with pytest.raises(InvalidArgumentError) as info:
            build(f"{SECRET}{char}x")
        assert field in str(info.value)
        assert SECRET not in str(info.value)

    def test_refusal_never_quotes_the_secret(self) -> None:
        """The message names the field, not its value."""
        with pytest.raises(InvalidArgumentError) as info:
            DigestAuth("p", SECRET + "\n")
        assert "DigestAuth.private_key" in str(info.value)
        assert SECRET not in str(info.value)

    def test_public_names_are_exported(self) -> None:
        """The credentials are importable from the package root."""
        for name in ("DigestAuth", "ServiceAccount", "BearerToken", "auth_from_env"):
            assert name in aiokeys.__all__
        assert aiokeys.__all__ == sorted(aiokeys.__all__)


class TestValidateBaseUrl:
    @pytest.mark.parametrize(
        "url",
        ["http://cloud.mongodb.com", "http://10.0.0.5:8080", "http://example.test/"],
    )
    def test_plain_http_off_loopback_is_refused(self, url: str) -> None:
        """Credentials would travel in clear: refused unless opted in."""
        with pytest.raises(InvalidArgumentError, match="plain http"):
            validate_base_url(url, allow_insecure_http=False)
        assert str(validate_base_url(url, allow_insecure_http=True)) == url.rstrip("/")

    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"]
    )
    def test_plain_http_on_loopback_is_accepted(self, url: str) -> None:
        """The simulator runs on loopback over http."""
        assert validate_base_url(url, allow_insecure_http=False).scheme == "http"

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.evil.com",
            "http://127.0.0.1.nip.io",
            "http://127.0.0.1\t.evil.com",
            "http://localhost.evil.com",
            "http://[::2]:9",
        ],
    )
    def test_look_alike_loopback_is_refused(self, url: str) -> None:
        """Only an address that is loopback, or exactly localhost, counts as one."""
        with pytest.raises(InvalidArgumentError, match="plain http"):
            validate_base_url(url, allow_insecure_http=False)

    @pytest.mark.parametrize(
        "url", ["http://127.1.2.3:80", "http://[0:0:0:0:0:0:0:1]", "http://LOCALHOST"]
    )
    def test_other_loopback_forms_are_accepted(self, url: str) -> None:
        """The whole 127/8 block, any spelling of ::1, and localhost in any case."""
        assert validate_base_url(url, allow_insecure_http=False).scheme == "http"

    @pytest.mark.parametrize(
        "url",
        [
            "https://u:PW-planted@cloud.mongodb.com",
            "https://u@cloud.mongodb.com",
            "ftp://u:PW-planted@x.test",
            "https://u:PW-planted@x.test/api?a=PW-planted#PW-planted",
        ],
    )
    def test_user_info_is_refused_without_echo(self, url: str) -> None:
        """Credentials belong in ``auth=``; the password never reaches the message."""
        with pytest.raises(InvalidArgumentError, match="user info") as info:
            validate_base_url(url, allow_insecure_http=True)
        assert "PW-planted" not in str(info.value)

    @pytest.mark.parametrize(
        "url",
        [
            "https://x.test/?token=PW-planted",
            "https://x.test/#PW-planted",
            42,
            "http://[",
        ],
    )
    def test_refusals_never_echo_query_or_fragment(self, url: object) -> None:
        """A query or fragment may carry a secret: messages describe, not quote."""
        with pytest.raises(InvalidArgumentError) as info:
            validate_base_url(url, allow_insecure_http=True)  # type: ignore[arg-type]
        assert "PW-planted" not in str(info.value)

    @pytest.mark.parametrize(
        "url", ["ftp://x.test", "https://", "https://x.test/api", "https://x.test/?a=1"]
    )
    def test_not_an_origin_is_refused(self, url: str) -> None:
        """Only an http(s) origin is a base URL."""
        with pytest.raises(InvalidArgumentError):
            validate_base_url(url, allow_insecure_http=True)

    def test_a_path_is_named_in_the_refusal(self) -> None:
        """The path that makes a base URL no origin is shown, so it can be fixed."""
        with pytest.raises(InvalidArgumentError, match=r"came with path '/api'"):
            validate_base_url("http://127.0.0.1:1/api", allow_insecure_http=False)


class TestAuthFromEnv:
    def test_service_account_wins_over_api_key_and_token(self) -> None:
        """With every kind set, the service account is picked."""
        env = {
            "MONGODB_ATLAS_CLIENT_ID": "cid",
            "MONGODB_ATLAS_CLIENT_SECRET": "csecret",
            "MONGODB_ATLAS_PUBLIC_API_KEY": "pub",
            "MONGODB_ATLAS_PRIVATE_API_KEY": "priv",
            "MONGODB_ATLAS_ACCESS_TOKEN": "tok",
        }
        creds = auth_from_env(env)
        assert creds == EnvCredentials(
            auth=ServiceAccount("cid", "csecret"),
            base_url=DEFAULT_BASE_URL,
            variables=("MONGODB_ATLAS_CLIENT_ID", "MONGODB_ATLAS_CLIENT_SECRET"),
        )

    @pytest.mark.parametrize(
        ("public", "private"),
        [
            ("MONGODB_ATLAS_PUBLIC_API_KEY", "MONGODB_ATLAS_PRIVATE_API_KEY"),
            ("MONGODB_ATLAS_PUBLIC_KEY", "MONGODB_ATLAS_PRIVATE_KEY"),
            ("MONGODB_ATLAS_PUBLIC_API_KEY", "MONGODB_ATLAS_PRIVATE_KEY"),
        ],
    )
    def test_api_key_under_either_spelling(self, public: str, private: str) -> None:
        """Both spellings the official tools use are read."""
        creds = auth_from_env({public: " pub ", private: "priv", "OTHER": "x"})
        assert creds.auth == DigestAuth("pub", "priv")
        assert creds.variables == (public, private)

    def test_access_token_last(self) -> None:
        """A bare token is used when nothing else is set."""
        creds = auth_from_env({"MONGODB_ATLAS_ACCESS_TOKEN": "tok"})
        assert creds.auth == BearerToken("tok")

    def test_base_url_from_environment(self) -> None:
        """MONGODB_ATLAS_BASE_URL overrides the default, stripped."""
        env = {
            "MONGODB_ATLAS_ACCESS_TOKEN": "tok",
            "MONGODB_ATLAS_BASE_URL": " http://127.0.0.1:9 ",
        }
        assert auth_from_env(env).base_url == "http://127.0.0.1:9"

    def test_nothing_set_names_every_variable(self) -> None:
        """The error tells the user exactly what to set."""
        with pytest.raises(MissingCredentialsError) as info:
            auth_from_env({"MONGODB_ATLAS_CLIENT_ID": "  ", "HOME": "/root"})
        message = str(info.value)
        for name in (
            "MONGODB_ATLAS_CLIENT_ID",
            "MONGODB_ATLAS_CLIENT_SECRET",
            "MONGODB_ATLAS_PUBLIC_API_KEY",
            "MONGODB_ATLAS_PRIVATE_API_KEY",
            "MONGODB_ATLAS_PUBLIC_KEY",
            "MONGODB_ATLAS_PRIVATE_KEY",
            "MONGODB_ATLAS_ACCESS_TOKEN",
        ):
            assert name in message
        assert isinstance(info.value, ValueError)

    def test_half_a_pair_is_an_error_not_a_fallback(self) -> None:
        """A client id without its secret is reported, even if a token is set."""
        env = {
            "MONGODB_ATLAS_CLIENT_ID": "cid",
            "MONGODB_ATLAS_ACCESS_TOKEN": "tok",
        }
        with pytest.raises(
            MissingCredentialsError, match="MONGODB_ATLAS_CLIENT_SECRET"
        ):
            auth_from_env(env)

    def test_conflicting_spellings_are_refused_without_values(self) -> None:
        """Two spellings of one key with different values: refused, values hidden."""
        env = {
            "MONGODB_ATLAS_PUBLIC_API_KEY": "pub",
            "MONGODB_ATLAS_PRIVATE_API_KEY": SECRET,
            "MONGODB_ATLAS_PRIVATE_KEY": SECRET + "2",
        }
        with pytest.raises(InvalidArgumentError) as info:
            auth_from_env(env)
        assert "MONGODB_ATLAS_PRIVATE_KEY" in str(info.value)
        assert SECRET not in str(info.value)

    def test_reads_os_environ_by_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without an argument the process environment is read."""
        for name in (
            "MONGODB_ATLAS_CLIENT_ID",
            "MONGODB_ATLAS_CLIENT_SECRET",
            "MONGODB_ATLAS_PUBLIC_API_KEY",
            "MONGODB_ATLAS_PRIVATE_API_KEY",
            "MONGODB_ATLAS_PUBLIC_KEY",
            "MONGODB_ATLAS_PRIVATE_KEY",
            "MONGODB_ATLAS_BASE_URL",
        ):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("MONGODB_ATLAS_ACCESS_TOKEN", "from-os")
        assert auth_from_env().auth == BearerToken("from-os")

    @given(
        st.dictionaries(
            st.sampled_from(
                [
                    "MONGODB_ATLAS_CLIENT_ID",
                    "MONGODB_ATLAS_CLIENT_SECRET",
                    "MONGODB_ATLAS_PUBLIC_API_KEY",
                    "MONGODB_ATLAS_PRIVATE_API_KEY",
                    "MONGODB_ATLAS_ACCESS_TOKEN",
                ]
            ),
            st.sampled_from(["", " ", "v1", "v2"]),
        )
    )
    def test_outcome_follows_the_priority(self, env: dict[str, str]) -> None:
        """Whatever is set, the result is the first complete kind, or an error."""
        present = {k for k, v in env.items() if v.strip()}
        sa = {"MONGODB_ATLAS_CLIENT_ID", "MONGODB_ATLAS_CLIENT_SECRET"} & present
        key = {
            "MONGODB_ATLAS_PUBLIC_API_KEY",
            "MONGODB_ATLAS_PRIVATE_API_KEY",
        } & present
        expected: type | None = None
        for kind, pair in ((ServiceAccount, sa), (DigestAuth, key)):
            if len(pair) == 1:  # half a pair before any complete kind: an error
                break
            if len(pair) == 2:
                expected = kind
                break
        else:
            if "MONGODB_ATLAS_ACCESS_TOKEN" in present:
                expected = BearerToken
        if expected is None:
            with pytest.raises(MissingCredentialsError):
                auth_from_env(env)
        else:
            assert type(auth_from_env(env).auth) is expected


class TestTokenParsing:
    def test_margin_is_a_tenth_capped_at_a_minute(self) -> None:
        """An hour-long token is renewed a minute early, a short one sooner."""
        assert renew_margin(3600) == 60.0
        assert renew_margin(2.0) == pytest.approx(0.2)

    def test_token_response_is_read(self) -> None:
        """access_token and expires_in come out; a missing lifetime means an hour."""
        body = b'{"access_token": "t", "token_type": "Bearer", "expires_in": 120}'
        assert _parse_token(body, url="u") == ("t", 120.0)
        assert _parse_token(b'{"access_token": "t"}', url="u") == ("t", 3600.0)

    @pytest.mark.parametrize(
        "body",
        [
            b"not json",
            b"[]",
            b'{"token_type": "Bearer"}',
            b'{"access_token": "t", "token_type": "mac"}',
        ],
    )
    def test_bad_token_response_is_unexpected(self, body: bytes) -> None:
        """A token response we cannot use is an UnexpectedResponseError."""
        with pytest.raises(aiokeys.UnexpectedResponseError):
            _parse_token(body, url="u")


def test_client_refuses_plain_http_off_loopback() -> None:
    """The client checks the base URL when it is built, before any request."""
    with pytest.raises(InvalidArgumentError, match="plain http"):
        aiokeys.Client(auth=BearerToken("t"), base_url="http://cloud.mongodb.com")


def test_env_value_with_a_control_character_is_refused() -> None:
    """A token with a NUL inside (stripping removes only the ends) is refused."""
    with pytest.raises(InvalidArgumentError, match=r"BearerToken\.token") as info:
        auth_from_env({"MONGODB_ATLAS_ACCESS_TOKEN": f" {SECRET}\x00x "})
    assert SECRET not in str(info.value)
