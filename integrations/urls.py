from rest_framework.routers import SimpleRouter

from integrations.views import IntegrationViewSet, ProviderViewSet

router = SimpleRouter(trailing_slash="/?")
router.register("integrations", IntegrationViewSet, basename="integration")
router.register("providers", ProviderViewSet, basename="provider")

urlpatterns = router.urls
