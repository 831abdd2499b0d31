"""Who did something: a staff user, an API key, an integration, or the system.

Audit rows (order status history, stock movements, ...) store an actor as three plain columns so that no app
needs a foreign key into another app's tables just to say who acted.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    kind: str  # "user" | "api_key" | "integration" | "system"
    id: str = ""
    label: str = ""

    @classmethod
    def system(cls, label: str = "system") -> "Actor":
        return cls("system", "", label)

    @classmethod
    def for_user(cls, user) -> "Actor":
        return cls("user", str(user.pk), user.get_username())

    @classmethod
    def from_request(cls, request) -> "Actor":
        """The API key when the request authenticated with one (its `as_actor()`), else the user."""
        auth = getattr(request, "auth", None)
        if auth is not None and hasattr(auth, "as_actor"):
            return auth.as_actor()
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return cls.for_user(user)
        return cls.system("anonymous")

    def as_fields(self, prefix: str = "actor") -> dict:
        return {f"{prefix}_type": self.kind, f"{prefix}_id": self.id, f"{prefix}_label": self.label[:200]}
