"""Bearer authentication: HS256 JWTs from AccessKey/SecretKey pairs, or plain API keys."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import jwt

from .domain.errors import (
    AUTH_EMPTY,
    AUTH_EXPIRED,
    AUTH_FAILED,
    AUTH_INVALID,
    AUTH_NOT_YET_VALID,
    ApiError,
)
from .domain.models import Account, AccountId


@dataclass(frozen=True, slots=True)
class Principal:
    account: AccountId
    via: str  # "jwt" or "api_key"
    token_lifetime_s: int | None = None


def make_token(
    access_key: str, secret_key: str, lifetime_s: int = 1800, now: float | None = None
) -> str:
    """A token exactly as the documented sample builds it: exp = now + 1800, nbf = now - 5."""
    t = int(time.time() if now is None else now)
    return jwt.encode(
        {"iss": access_key, "exp": t + lifetime_s, "nbf": t - 5},
        secret_key,
        algorithm="HS256",
        headers={"alg": "HS256", "typ": "JWT"},
    )


VERDICT_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class _Verdict:
    principal: Principal
    not_before: float  # nbf (or -inf), leeway applied
    expires: float  # exp, leeway applied


class Authenticator:
    """Token checks use wall time, not the mock's clock: clients sign with their real clock.

    A JWT's signature is verified once; the verdict is remembered (an LRU of `cache_size`
    tokens) and only `nbf`/`exp` are checked again, on every request, against `clock`, the
    wall clock PyJWT itself reads. A client reuses one token for up to 30 minutes, and the
    signature check was most of the cost of an authenticated request.
    """

    def __init__(
        self,
        accounts: Iterable[Account],
        leeway_s: int = 0,
        cache_size: int = VERDICT_CACHE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        accounts = list(accounts)
        self._by_access = {a.access_key: a for a in accounts}
        self._by_api_key = {k: a for a in accounts for k in a.api_keys}
        self._leeway = leeway_s
        self._cache_size = cache_size
        self._verdicts: OrderedDict[str, _Verdict] = OrderedDict()
        self._clock = clock

    def authenticate(self, header: str | None) -> Principal:
        if not header or not header.strip():
            raise ApiError(
                AUTH_EMPTY, "Authorization is empty: send 'Authorization: Bearer <token>'"
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(AUTH_INVALID, "Authorization is invalid: expected 'Bearer <token>'")
        token = token.strip()
        account = self._by_api_key.get(token)
        if account is not None:
            return Principal(account.account, "api_key")
        if token.count(".") != 2:
            raise ApiError(AUTH_FAILED, "Authentication failed: unknown API key")
        verdict = self._verdicts.get(token)
        if verdict is None:
            return self._verify_jwt(token)
        now = self._clock()
        if now >= verdict.expires:  # kept: the LRU drops it, and it stays expired meanwhile
            raise ApiError(AUTH_EXPIRED, "Authorization has expired: exp is in the past")
        if now < verdict.not_before:
            raise ApiError(
                AUTH_NOT_YET_VALID, "Authorization is not yet valid: nbf is in the future"
            )
        self._verdicts.move_to_end(token)
        return verdict.principal

    def _remember(self, token: str, principal: Principal, claims: dict[str, object]) -> None:
        if self._cache_size <= 0:
            return
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            return  # nothing to bound the verdict with: verify every time
        not_before = (
            nbf - self._leeway
            if isinstance(nbf, int | float) and not isinstance(nbf, bool)
            else float("-inf")
        )
        self._verdicts[token] = _Verdict(principal, not_before, exp + self._leeway)
        if len(self._verdicts) > self._cache_size:
            self._verdicts.popitem(last=False)

    def _verify_jwt(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise ApiError(
                AUTH_INVALID, f"Authorization is invalid: malformed JWT ({exc})"
            ) from exc
        if header.get("alg") != "HS256":
            raise ApiError(
                AUTH_INVALID,
                f"Authorization is invalid: alg must be HS256, got {header.get('alg')!r}",
            )
        account = self._by_access.get(str(claims.get("iss", "")))
        if account is None:
            raise ApiError(AUTH_FAILED, "Authentication failed: iss is not a known AccessKey")
        try:
            verified = jwt.decode(
                token,
                account.secret_key,
                algorithms=["HS256"],
                leeway=self._leeway,
                options={"require": ["exp", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(AUTH_EXPIRED, "Authorization has expired: exp is in the past") from exc
        except jwt.ImmatureSignatureError as exc:
            raise ApiError(
                AUTH_NOT_YET_VALID, "Authorization is not yet valid: nbf is in the future"
            ) from exc
        except jwt.InvalidSignatureError as exc:
            raise ApiError(
                AUTH_FAILED, "Authentication failed: the signature does not match the SecretKey"
            ) from exc
        except jwt.PyJWTError as exc:
            raise ApiError(AUTH_INVALID, f"Authorization is invalid: {exc}") from exc
        lifetime = None
        if isinstance(verified.get("exp"), int) and isinstance(verified.get("nbf"), int):
            lifetime = verified["exp"] - verified["nbf"]
        principal = Principal(account.account, "jwt", lifetime)
        self._remember(token, principal, verified)
        return principal
