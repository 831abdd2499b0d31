from django.urls import path

from integrations.views import IntegrationViewSet, ProviderViewSet, oauth_callback
from jewelia.core.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("integrations", IntegrationViewSet, basename="integration")
router.register("providers", ProviderViewSet, basename="provider")

urlpatterns = [
    *router.urls,
    # The redirect URI every OAuth provider app registers (SITE_URL + /api/oauth/callback/).
    path("oauth/callback/", oauth_callback, name="integration-oauth-callback"),
]
