from rest_framework.routers import SimpleRouter

from .views import ApiKeyViewSet

router = SimpleRouter()
# The trailing slash is optional (`/api/api-keys` and `/api/api-keys/`). DRF's constructor turns any truthy
# `trailing_slash` into a mandatory "/", so the pattern is set on the instance.
router.trailing_slash = "/?"
router.register("api-keys", ApiKeyViewSet, basename="api-key")

urlpatterns = router.urls
