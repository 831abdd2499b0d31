from jewelia.core.routers import OptionalSlashRouter

from .views import CustomerOrderViewSet, CustomerViewSet, OrderViewSet, ProductViewSet

router = OptionalSlashRouter()
router.register("orders", OrderViewSet, basename="order")
router.register("customers", CustomerViewSet, basename="customer")
router.register(r"customers/(?P<customer_pk>[0-9]+)/orders", CustomerOrderViewSet, basename="customer-orders")
router.register("products", ProductViewSet, basename="product")

urlpatterns = router.urls
