"""How a dashboard is started: read-only or with actions, its token, how often pages
refresh and how long a read is shared."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ValidationError


@dataclass
class DashboardConfig:
    """Options of ``create_app`` (and ``ceylon-redis dashboard``)."""

    actions: bool = False
    """Allow retry, cancel, purge and pause/resume (each needs ``token``)."""
    token: str | None = field(default=None, repr=False)
    """What an action must present: a Bearer header, the password of basic auth, or the
    token typed into the sign-in page."""
    refresh: float = 2.0
    """Seconds between a page's looks at its view when no event prompts one."""
    cache_ttl: float = 1.0
    """Seconds a read of Redis is shared by every request for the same view."""
    page_size: int = 50
    """Rows per page of every list."""

    def check(self) -> None:
        """ValidationError for options that cannot work together."""
        if self.actions and not self.token:
            raise ValidationError("a dashboard with actions needs a token (give one, or "
                                  "let `ceylon-redis dashboard --actions` make one)")
        if self.token is not None and len(self.token) < 8:
            raise ValidationError("the dashboard token must be at least 8 characters")
        if not 0 < self.page_size <= 1_000:
            raise ValidationError(f"page_size must be 1 to 1000, not {self.page_size}")
        if self.refresh <= 0 or self.cache_ttl < 0:
            raise ValidationError("refresh must be positive and cache_ttl not negative")
