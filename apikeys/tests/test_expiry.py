from datetime import timedelta

import pytest
from django.core import mail

from apikeys.models import ApiKey
from apikeys.services import api_key_expiry_notify, api_key_revoke, api_key_rotate
from apikeys.tasks import notify_expiring
from jewelia.core.actors import Actor

from .factories import create_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def recipients(settings, django_user_model):
    settings.ADMINS = [("Ops", "ops@example.com")]
    django_user_model.objects.create_user(username="manager", email="Manager@Example.com", is_staff=True)
    django_user_model.objects.create_user(username="clerk", email="clerk@example.com")  # not staff
    django_user_model.objects.create_user(username="left", email="left@example.com", is_staff=True, is_active=False)


def test_staff_are_mailed_about_keys_expiring_within_7_days(recipients, clock):
    soon, _ = create_key(name="Shop", expires_at=clock.now + timedelta(days=6, hours=23))
    create_key(name="Later", expires_at=clock.now + timedelta(days=7, hours=1))
    assert notify_expiring.delay().get() == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["manager@example.com", "ops@example.com"]
    assert message.subject == "[Jewelia] 1 API key(s) expire within 7 days"
    assert f"Shop ({soon.identifier})" in message.body
    assert "Later" not in message.body
    assert ApiKey.objects.get(pk=soon.pk).expiry_notified_at == clock.now


def test_each_key_is_notified_only_once(recipients, clock):
    create_key(expires_at=clock.now + timedelta(days=3))
    api_key_expiry_notify()
    clock.advance(hours=1)
    assert api_key_expiry_notify() == 0
    assert len(mail.outbox) == 1


def test_a_key_entering_the_window_later_gets_its_own_notice(recipients, clock):
    create_key(name="First", expires_at=clock.now + timedelta(days=3))
    create_key(name="Second", expires_at=clock.now + timedelta(days=9))
    api_key_expiry_notify()
    clock.advance(days=2, hours=1)
    assert api_key_expiry_notify() == 1
    assert "Second" in mail.outbox[1].body
    assert "First" not in mail.outbox[1].body


def test_revoked_rotated_and_expired_keys_are_not_notified(recipients, clock):
    revoked, _ = create_key(expires_at=clock.now + timedelta(days=3))
    api_key_revoke(key=revoked, actor=Actor.system())
    rotated, _ = create_key(expires_at=clock.now + timedelta(days=3))
    replacement, _ = api_key_rotate(key=rotated, actor=Actor.system(), grace_period=timedelta(hours=1))
    create_key(expires_at=clock.now + timedelta(hours=1))
    clock.advance(hours=2)
    assert api_key_expiry_notify() == 1
    assert list(ApiKey.objects.exclude(expiry_notified_at=None).values_list("pk", flat=True)) == [replacement.pk]


def test_without_recipients_nothing_is_marked(settings, clock):
    settings.ADMINS = []
    key, _ = create_key(expires_at=clock.now + timedelta(days=3))
    assert api_key_expiry_notify() == 0
    assert ApiKey.objects.get(pk=key.pk).expiry_notified_at is None
