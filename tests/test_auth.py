"""Bearer authentication: API keys, HS256 JWTs and every documented refusal (1000-1004)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import jwt
import jwt.warnings
import pytest
from starlette.testclient import TestClient

from mock_server.auth import Authenticator, make_token
from mock_server.config import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, default_accounts
from mock_server.domain.errors import ApiError
from mock_server.domain.models import Account, AccountId
from mock_server.spec import load_spec
from tests.conftest import create_body, identify

# The mock's default keys are short, like the console's samples; PyJWT warns about them.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

SPEC = load_spec()
TASKS = "/v1/videos/advanced-lip-sync"

OTHER_ACCOUNT = Account(AccountId("other-ak"), "other-ak", "other-sk", ("other-api-key",))


def _token(
    iss: str = DEFAULT_ACCESS_KEY,
    secret: str = DEFAULT_SECRET_KEY,
    alg: str = "HS256",
    with_exp: bool = True,
) -> str:
    """A JWT for the default account, built like the documented sample unless told otherwise."""
    now = int(time.time())
    claims: dict[str, object] = {"iss": iss, "exp": now + 1800, "nbf": now - 5}
    if not with_exp:
        del claims["exp"]
    return jwt.encode(claims, secret, algorithm=alg)


def _sample_token_signed_at(offset_s: float) -> str:
    """The documented sample token, as a client whose clock is `offset_s` off would sign it."""
    return make_token(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, now=time.time() + offset_s)


def _unsigned_token() -> str:
    """A JWT with `alg: none` and no signature, as an attacker would forge it."""
    now = int(time.time())
    claims = {"iss": DEFAULT_ACCESS_KEY, "exp": now + 1800, "nbf": now - 5}
    return jwt.encode(claims, None, algorithm="none")


def _refusals() -> list[tuple[str, str | None, int]]:
    """(case, Authorization header or None to omit it, expected code)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return [
            ("missing header", None, 1001),
            ("empty header", "", 1001),
            ("blank header", "   ", 1001),
            ("garbage header", "garbage", 1002),
            ("basic scheme", "Basic bW9jazptb2Nr", 1002),
            ("bearer without token", "Bearer ", 1002),
            ("malformed jwt", "Bearer abc.def.ghi", 1002),
            ("unknown api key", "Bearer sk-not-a-key-of-this-mock", 1000),
            ("wrong secret", f"Bearer {_token(secret='not-the-secret')}", 1000),
            ("unknown access key", f"Bearer {_token(iss='nobody')}", 1000),
            ("alg none", f"Bearer {_unsigned_token()}", 1002),
            ("hs512", f"Bearer {_token(alg='HS512')}", 1002),
            ("no exp claim", f"Bearer {_token(with_exp=False)}", 1002),
            ("expired", f"Bearer {_sample_token_signed_at(-3600)}", 1004),
            ("nbf in the future", f"Bearer {_sample_token_signed_at(600)}", 1003),
        ]


REFUSALS = _refusals()


@pytest.fixture
def anonymous(make_client: Callable[..., TestClient]) -> TestClient:
    """A mock whose client sends no Authorization header unless a test adds one."""
    client = make_client(accounts=(*default_accounts(), OTHER_ACCOUNT))
    del client.headers["Authorization"]
    return client


def _send(client: TestClient, header: str | None) -> tuple[int, dict[str, object]]:
    headers = {} if header is None else {"Authorization": header}
    r = client.get(TASKS, headers=headers)
    body: dict[str, object] = r.json()
    return r.status_code, body


class TestRefusals:
    @pytest.mark.parametrize(
        ("header", "code"),
        [(h, c) for _, h, c in REFUSALS],
        ids=[name for name, _, _ in REFUSALS],
    )
    def test_refused_with_documented_code_and_401(
        self, anonymous: TestClient, header: str | None, code: int
    ) -> None:
        """Each kind of bad credential answers HTTP 401 with its documented code, enveloped."""
        status, body = _send(anonymous, header)
        assert (status, body["code"]) == (401, code), body
        assert SPEC.http_status[code] == 401
        assert body["data"] is None
        assert body["request_id"]
        assert isinstance(body["message"], str) and body["message"]

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/v1/videos/identify-face"),
            ("POST", TASKS),
            ("GET", TASKS),
            ("GET", f"{TASKS}/123"),
            ("POST", "/v1/audio/tts"),
        ],
    )
    def test_every_operation_requires_authorization(
        self, anonymous: TestClient, method: str, path: str
    ) -> None:
        """No API operation answers without credentials, whatever the body."""
        r = anonymous.request(method, path, json={})
        assert (r.status_code, r.json()["code"]) == (401, 1001)

    def test_authentication_is_checked_before_the_body(self, anonymous: TestClient) -> None:
        """A malformed body from an unauthenticated caller is refused for the credentials."""
        r = anonymous.post("/v1/videos/identify-face", content=b"{not json")
        assert (r.status_code, r.json()["code"]) == (401, 1001)

    def test_other_accounts_task_is_not_found(self, anonymous: TestClient) -> None:
        """A task of another account answers 1203 with HTTP 404, as if it did not exist."""
        other = {"Authorization": "Bearer other-api-key"}
        mine = {"Authorization": "Bearer mock-api-key"}
        session = anonymous.post(
            "/v1/videos/identify-face",
            json={"video_url": "https://example.com/speaker.mp4"},
            headers=other,
        ).json()["data"]["session_id"]
        created = anonymous.post(
            TASKS, json=create_body(session, external_task_id="theirs"), headers=other
        )
        task_id = created.json()["data"]["task_id"]
        for ident in (task_id, "theirs"):
            r = anonymous.get(f"{TASKS}/{ident}", headers=mine)
            assert (r.status_code, r.json()["code"]) == (404, 1203), r.text
            assert anonymous.get(f"{TASKS}/{ident}", headers=other).status_code == 200


class TestAccepted:
    def test_api_key(self, client: TestClient) -> None:
        """The console API key is accepted as a bearer token as is."""
        assert client.get(TASKS).status_code == 200

    def test_documented_jwt(self, anonymous: TestClient) -> None:
        """A JWT built like the documented sample (HS256, exp now+1800, nbf now-5) is accepted."""
        token = make_token(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
        status, body = _send(anonymous, f"Bearer {token}")
        assert (status, body["code"]) == (200, 0)

    def test_scheme_is_case_insensitive(self, anonymous: TestClient) -> None:
        """`bearer` in lower case is accepted, as HTTP auth schemes are case-insensitive."""
        status, _ = _send(anonymous, "bearer mock-api-key")
        assert status == 200

    def test_jwt_of_second_account_sees_its_own_tasks(self, anonymous: TestClient) -> None:
        """A JWT signed with the second account's SecretKey acts as that account."""
        token = make_token(OTHER_ACCOUNT.access_key, OTHER_ACCOUNT.secret_key)
        headers = {"Authorization": f"Bearer {token}"}
        anonymous.headers.update(headers)
        session = identify(anonymous)["session_id"]
        task_id = anonymous.post(TASKS, json=create_body(session)).json()["data"]["task_id"]
        via_key = anonymous.get(TASKS, headers={"Authorization": "Bearer other-api-key"})
        assert [t["task_id"] for t in via_key.json()["data"]] == [task_id]
        mine = anonymous.get(TASKS, headers={"Authorization": "Bearer mock-api-key"})
        assert mine.json()["data"] == []


class TestAuthenticator:
    def test_token_lifetime_is_reported(self) -> None:
        """A verified JWT reports exp - nbf, which client checks read (1805 s for the sample)."""
        auth = Authenticator(default_accounts())
        principal = auth.authenticate(
            f"Bearer {make_token(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)}"
        )
        assert (principal.via, principal.token_lifetime_s) == ("jwt", 1805)

    def test_refusals_are_api_errors(self) -> None:
        """The authenticator raises the domain's one error type, never a library exception."""
        auth = Authenticator(default_accounts())
        for _, header, code in REFUSALS:
            with pytest.raises(ApiError) as caught:
                auth.authenticate(header)
            assert caught.value.code == code


class FakeClock:
    """Wall time as the verdict cache reads it, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _counting_decode(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every signature verification (a `jwt.decode` with a key)."""
    verified: list[str] = []
    real = jwt.decode

    def decode(token: str, key: object = None, *args: object, **kwargs: object) -> object:
        if key is not None:
            verified.append(token)
        return real(token, key, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", decode)
    return verified


class TestVerdictCache:
    def test_signature_is_verified_once_per_token(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The same token on 100 requests is verified once; a new token is verified again."""
        verified = _counting_decode(monkeypatch)
        auth = Authenticator(default_accounts())
        token = make_token(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
        for _ in range(100):
            assert auth.authenticate(f"Bearer {token}").via == "jwt"
        assert verified == [token]
        other = make_token(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, lifetime_s=600)
        auth.authenticate(f"Bearer {other}")
        assert verified == [token, other]

    def test_exp_is_enforced_on_a_remembered_token(self) -> None:
        """A remembered token is refused with 1004 once the clock passes its exp."""
        clock = FakeClock()
        auth = Authenticator(default_accounts(), clock=clock)
        token = make_token(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, lifetime_s=60)
        assert auth.authenticate(f"Bearer {token}").via == "jwt"
        clock.now += 59
        assert auth.authenticate(f"Bearer {token}").via == "jwt"
        clock.now += 2
        for _ in range(2):  # still refused when asked again
            with pytest.raises(ApiError) as caught:
                auth.authenticate(f"Bearer {token}")
            assert caught.value.code == 1004

    def test_nbf_is_enforced_on_a_remembered_token(self) -> None:
        """If the clock goes back before nbf, a remembered token answers 1003 like a new one."""
        clock = FakeClock()
        auth = Authenticator(default_accounts(), clock=clock)
        token = make_token(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)  # nbf = now - 5
        auth.authenticate(f"Bearer {token}")
        clock.now -= 60
        with pytest.raises(ApiError) as caught:
            auth.authenticate(f"Bearer {token}")
        assert caught.value.code == 1003

    def test_refused_tokens_are_not_remembered(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A token with a wrong signature is checked (and refused) on every request."""
        verified = _counting_decode(monkeypatch)
        auth = Authenticator(default_accounts())
        bad = _token(secret="not-the-secret")
        for _ in range(3):
            with pytest.raises(ApiError) as caught:
                auth.authenticate(f"Bearer {bad}")
            assert caught.value.code == 1000
        assert len(verified) == 3

    def test_cache_is_bounded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Past `cache_size` tokens the least recently used verdict is dropped, not kept."""
        auth = Authenticator(default_accounts(), cache_size=8)
        tokens = [
            make_token(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, lifetime_s=600 + i)
            for i in range(20)
        ]
        for token in tokens:
            auth.authenticate(f"Bearer {token}")
        assert len(auth._verdicts) == 8
        verified = _counting_decode(monkeypatch)
        auth.authenticate(f"Bearer {tokens[-1]}")  # remembered
        auth.authenticate(f"Bearer {tokens[0]}")  # dropped long ago: verified again
        assert verified == [tokens[0]]

    def test_per_request_cost(self) -> None:
        """A remembered JWT costs a small fraction of a full verification (ratio printed)."""
        token = f"Bearer {make_token(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)}"
        cached = Authenticator(default_accounts())
        uncached = Authenticator(default_accounts(), cache_size=0)
        n = 2000

        def per_call(auth: Authenticator) -> float:
            best = float("inf")
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(n):
                    auth.authenticate(token)
                best = min(best, (time.perf_counter() - started) / n)
            return best * 1e6

        full, remembered = per_call(uncached), per_call(cached)
        print(f"\njwt auth per request: verified {full:.1f} us, remembered {remembered:.1f} us, "
              f"{full / remembered:.0f}x")  # fmt: skip
        assert remembered * 5 < full


ADMIN_TOKEN = "s3cret-admin-token"


class TestAdminToken:
    @pytest.fixture
    def guarded(self, make_client: Callable[..., TestClient]) -> TestClient:
        return make_client(admin_token=ADMIN_TOKEN)

    @pytest.mark.parametrize(
        ("headers", "code"),
        [({}, 1001), ({"X-Admin-Token": ""}, 1001), ({"X-Admin-Token": "guess"}, 1000)],
        ids=["missing", "empty", "wrong"],
    )
    @pytest.mark.parametrize(
        ("method", "path"),
        [("POST", "/__admin/reset"), ("GET", "/__admin/journal"), ("GET", "/__admin"),
         ("POST", "/__admin/clock/advance"), ("GET", "/__admin/nowhere")],
    )  # fmt: skip
    def test_refused_without_the_token(
        self,
        guarded: TestClient,
        headers: dict[str, str],
        code: int,
        method: str,
        path: str,
    ) -> None:
        """Every /__admin/ request without the right token is 401 with code 1001 or 1000."""
        r = guarded.request(method, path, headers=headers, json={"ms": 1000})
        assert r.status_code == 401, r.text
        body = r.json()
        assert set(body) == {"code", "message", "request_id", "data"}
        assert body["code"] == code and body["data"] is None and body["request_id"]
        assert "X-Admin-Token" in body["message"]

    def test_refused_requests_change_nothing(self, guarded: TestClient) -> None:
        """A refused reset leaves the tasks and the journal as they were."""
        session = identify(guarded)["session_id"]
        guarded.post(TASKS, json=create_body(session))
        assert guarded.post("/__admin/reset").status_code == 401
        assert len(guarded.get(TASKS).json()["data"]) == 1

    def test_accepted_with_the_token(self, guarded: TestClient) -> None:
        """With the header the control API answers; the API itself needs no admin token."""
        ok = guarded.post("/__admin/reset", headers={"X-Admin-Token": ADMIN_TOKEN})
        assert (ok.status_code, ok.json()["code"]) == (200, 0)
        assert guarded.get(TASKS).status_code == 200
        assert guarded.get("/openapi.json").status_code == 200

    def test_no_token_configured_keeps_it_open(self, client: TestClient) -> None:
        """Without --admin-token the control API stays open (loopback binding only)."""
        assert client.post("/__admin/reset").status_code == 200

    def test_mock_server_and_admin_client_send_it(self) -> None:
        """`MockServer(admin_token=...)`: its `.admin` works, a client without the token not."""
        from mock_server.admin_client import AdminClient, AdminError
        from mock_server.testing import MockServer

        with MockServer(admin_token=ADMIN_TOKEN) as server:
            assert server.admin.clock()["mode"] == "real"
            stranger = AdminClient(server.base_url)
            with pytest.raises(AdminError) as refused:
                stranger.reset()
            stranger.close()
            assert refused.value.code == 1001
