"""Docker does not run on our machines, so check the compose file's services point at code that exists."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_service_with_a_healthcheck():
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "beat"}
    for name in ("postgres", "redis", "web", "worker"):
        assert "healthcheck" in services[name], name


def test_web_command_points_at_the_wsgi_application():
    command = " ".join(_compose()["services"]["web"]["command"])
    module, attr = re.search(r"gunicorn ([\w.]+):(\w+)", command).groups()
    assert (ROOT / (module.replace(".", "/") + ".py")).exists()
    assert f"{attr} =" in (ROOT / (module.replace(".", "/") + ".py")).read_text()
    assert "manage.py migrate" in command


def test_worker_and_beat_use_the_project_celery_app_and_queues():
    services = _compose()["services"]
    from django.conf import settings

    for name in ("worker", "beat"):
        command = services[name]["command"]
        assert command[:3] == ["celery", "-A", "jewelia"]
        assert (ROOT / "jewelia" / "celery.py").exists()
    queues = set(services["worker"]["command"][services["worker"]["command"].index("-Q") + 1].split(","))
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE}
    assert routed <= queues
    assert "django_celery_beat.schedulers:DatabaseScheduler" in services["beat"]["command"]


def test_app_services_get_database_and_redis_urls():
    services = _compose()["services"]
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://")


def test_env_example_documents_every_setting_read_from_the_environment():
    documented = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line}
    read = set()
    for path in (ROOT / "jewelia" / "settings").glob("*.py"):
        read |= set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', path.read_text()))
    assert read - documented == set()
