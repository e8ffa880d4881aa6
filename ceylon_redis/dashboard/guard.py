"""Who may act: the dashboard is read-only unless started with actions on, and then an
action needs the token (a Bearer header, basic auth with it as the password, or the
login cookie it buys) and, from a browser, the CSRF token its pages carry."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request

COOKIE = "ceylon_dashboard"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def new_token() -> str:
    """A token for a dashboard started with actions and none given."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Guard:
    """Checks a request's credentials against the one token of this dashboard."""

    actions: bool
    token: str | None

    def _mac(self, purpose: str) -> str:
        return hmac.new((self.token or "").encode(), purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def cookie_value(self) -> str:
        """What the login cookie holds: derived from the token, never the token itself."""
        return self._mac("session")

    @property
    def csrf(self) -> str:
        """The CSRF token of forms: a page shows it only to a signed-in browser."""
        return self._mac("csrf") if self.token else ""

    def _matches(self, given: str | None, expected: str) -> bool:
        return given is not None and given != "" and hmac.compare_digest(given.encode(),
                                                                         expected.encode())

    def bearer(self, request: Request) -> bool:
        """Signed by an ``Authorization: Bearer`` header (not sent by a browser on its own,
        so it needs no CSRF token)."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return (self.token is not None and scheme.lower() == "bearer"
                and self._matches(value.strip(), self.token))

    def signed_in(self, request: Request) -> bool:
        """Whether the request carries the token in any accepted form."""
        if not self.actions or self.token is None:
            return False
        if self.bearer(request) or self._matches(request.cookies.get(COOKIE),
                                                 self.cookie_value):
            return True
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            _, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, ValueError):  # not base64, not ASCII, not UTF-8
            return False
        return self._matches(password, self.token)

    def refusal(self, request: Request, form_csrf: str | None) -> tuple[int, str] | None:
        """Why an action is refused (status and reason), or None to let it through."""
        if not self.actions:
            return 403, "actions are off: start the dashboard with --actions to allow them"
        if not self.signed_in(request):
            return 401, "this action needs the dashboard's token (sign in first)"
        if self.bearer(request):
            return None
        given = form_csrf or request.headers.get(CSRF_HEADER)
        if not self._matches(given, self.csrf):
            return 403, "missing or wrong CSRF token: reload the page and try again"
        origin = request.headers.get("origin")
        hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
        if origin and origin.split("://", 1)[-1] not in hosts:
            return 403, f"cross-origin request from {origin} refused"
        return None

    def sign(self, text: str) -> str:
        """A flash message's signature: a page shows only the messages its actions made
        (a link with a made-up ``msg=`` shows nothing)."""
        return self._mac("flash:" + text)[:20] if self.token else ""

    def signed(self, text: str, signature: str) -> bool:
        return bool(text) and self.token is not None and self._matches(signature,
                                                                       self.sign(text))
