#!/usr/bin/env bash
# Run the whole test suite. Uses SQLite + eager Celery by default; set DATABASE_URL and REDIS_URL to run it on
# PostgreSQL + Redis (the tests marked `services` then run too, including a real Celery worker).
source "$(dirname "$0")/_venv.sh"
ensure_requirements requirements-dev.txt
exec .venv/bin/python -m pytest "$@"
