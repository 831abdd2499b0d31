import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# What production needs besides SECRET_KEY (one valid Fernet key, a pepper of 32+ characters).
SAFE = {
    "APIKEYS_PEPPER": "p" * 40,
    "FIELD_ENCRYPTION_KEYS": "bA7m0bkR0QHi8SuX5xw2V8SD1e7O6y5JzQp3YtDqfEk=",
}


def _import_production(**env):
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", *SAFE}}
    return subprocess.run(
        [sys.executable, "-c", "import jewelia.settings.production"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_refuses_missing_secret_key():
    result = _import_production()
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_debug():
    result = _import_production(SECRET_KEY="x" * 50, DEBUG="true", **SAFE)
    assert result.returncode != 0
    assert "DEBUG must be off" in result.stderr


def test_production_refuses_missing_or_short_pepper():
    for pepper in ({}, {"APIKEYS_PEPPER": "short"}):
        result = _import_production(SECRET_KEY="x" * 50, FIELD_ENCRYPTION_KEYS=SAFE["FIELD_ENCRYPTION_KEYS"], **pepper)
        assert result.returncode != 0
        assert "APIKEYS_PEPPER must be set" in result.stderr


def test_production_refuses_missing_encryption_keys():
    result = _import_production(SECRET_KEY="x" * 50, APIKEYS_PEPPER=SAFE["APIKEYS_PEPPER"])
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS must hold at least one Fernet key" in result.stderr


def test_production_starts_with_safe_settings():
    result = _import_production(SECRET_KEY="x" * 50, **SAFE)
    assert result.returncode == 0, result.stderr
