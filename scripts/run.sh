#!/usr/bin/env bash
# Set up and run Jewelia on http://127.0.0.1:8000: virtualenv, install, migrate, demo data, a staff login,
# the provider sandbox, and the dev server. With no DATABASE_URL/REDIS_URL it uses SQLite and eager Celery.
source "$(dirname "$0")/_venv.sh"
ensure_requirements requirements.txt
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-jewelia.settings.local}"
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py seed_demo
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
if [ -n "${REDIS_URL:-}" ]; then
  .venv/bin/celery -A jewelia worker -Q default,integrations,webhooks --loglevel=INFO & pids+=($!)
  .venv/bin/celery -A jewelia beat --loglevel=INFO & pids+=($!)
fi
echo
echo "Jewelia: http://127.0.0.1:8000/admin/  (API docs: http://127.0.0.1:8000/api/docs/)"
.venv/bin/python manage.py runserver 127.0.0.1:8000
