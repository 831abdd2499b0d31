"""The provider registry: an explicit list, validated when it is built."""

import pytest

from integrations.providers.base import AuthKind, Category, Provider, RecordKind, Resource
from integrations.providers.registry import (
    PROVIDER_CLASSES,
    UnknownProvider,
    all_providers,
    build_registry,
    get_provider,
    provider_choices,
)


class Minimal(Provider):
    key = "minimal"
    name = "Minimal"
    category = Category.ECOMMERCE
    auth_kind = AuthKind.API_KEY


def test_every_listed_provider_is_registered_once_in_list_order():
    assert [type(p) for p in all_providers()] == list(PROVIDER_CLASSES)
    assert [key for key, _ in provider_choices()] == [cls.key for cls in PROVIDER_CLASSES]
    assert ("shopify", "Shopify") in provider_choices()


def test_get_provider_returns_the_shared_instance():
    assert get_provider("shopify") is get_provider("shopify")


def test_an_unknown_key_is_a_key_error_naming_it():
    with pytest.raises(UnknownProvider) as caught:
        get_provider("myspace")

    assert isinstance(caught.value, KeyError) and caught.value.args == ("myspace",)


def test_two_classes_with_one_key_are_refused():
    class Twin(Minimal):
        name = "Twin"

    with pytest.raises(TypeError, match="Two providers use the key 'minimal'"):
        build_registry((Minimal, Twin))


def test_a_class_missing_its_identity_is_refused():
    class Nameless(Minimal):
        name = ""

    with pytest.raises(TypeError, match="must set name"):
        build_registry((Nameless,))


def test_a_resource_depending_on_an_unknown_resource_is_refused():
    class Broken(Minimal):
        resources = (Resource("orders", RecordKind.ORDER, depends_on=("customers",)),)

    with pytest.raises(TypeError, match="unknown resources"):
        build_registry((Broken,))
