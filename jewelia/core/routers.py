from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """A router whose routes match with or without the trailing slash (`/api/orders` and `/api/orders/`).

    DRF's constructor turns any truthy `trailing_slash` into a mandatory "/", so the pattern is set here.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trailing_slash = "/?"
