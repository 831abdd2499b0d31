#!/usr/bin/env bash
# Set up and run Jewelia on http://127.0.0.1:8000: virtualenv, install, migrate, the provider sandbox, demo
# data, a staff login, and the dev server. With no DATABASE_URL/REDIS_URL it uses SQLite and eager Celery.
source "$(dirname "$0")/_venv.sh"
ensure_requirements requirements.txt
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-jewelia.settings.local}"
SANDBOX_PORT="${SANDBOX_PORT:-8765}"
export SANDBOX_BASE_URL="${SANDBOX_BASE_URL:-http://127.0.0.1:${SANDBOX_PORT}}"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

mkdir -p var
.venv/bin/python manage.py migrate --noinput
# Fake provider APIs (Shopify, Stripe, ...) on 127.0.0.1, so the demo integrations sync over real HTTP.
.venv/bin/python -m integrations.sandbox --port "$SANDBOX_PORT" > var/sandbox.log 2>&1 & pids+=($!)
for _ in $(seq 1 50); do
  grep -q "Serving provider sandboxes" var/sandbox.log 2>/dev/null && break
  sleep 0.2
done
.venv/bin/python manage.py seed_demo --sync  # --sync: a first sync of the demo integrations from the sandbox
if [ -n "${REDIS_URL:-}" ]; then
  .venv/bin/celery -A jewelia worker -Q default,integrations,webhooks --loglevel=INFO & pids+=($!)
  .venv/bin/celery -A jewelia beat --loglevel=INFO & pids+=($!)
fi
echo
echo "Jewelia:    http://127.0.0.1:8000/admin/   (API docs: http://127.0.0.1:8000/api/docs/)"
echo "Sandbox:    ${SANDBOX_BASE_URL}  (log: var/sandbox.log)"
.venv/bin/python manage.py runserver 127.0.0.1:8000
