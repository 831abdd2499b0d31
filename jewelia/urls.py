from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from jewelia.core import health

handler404 = "jewelia.core.exceptions.handler404"
handler500 = "jewelia.core.exceptions.handler500"

api_patterns = [
    # The webhook receiver first: providers call it most, and URL resolution stops at the first match.
    path("", include("webhooks.urls")),
    path("", include("orders.urls")),
    path("", include("apikeys.urls")),
    path("", include("integrations.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
]

admin.site.site_header = "Jewelia back office"
admin.site.site_title = "Jewelia"
