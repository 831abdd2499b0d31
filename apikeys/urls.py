from jewelia.core.routers import OptionalSlashRouter

from .views import ApiKeyViewSet

router = OptionalSlashRouter()  # `/api/api-keys` and `/api/api-keys/`
router.register("api-keys", ApiKeyViewSet, basename="api-key")

urlpatterns = router.urls
