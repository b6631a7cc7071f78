"""Flower's settings, read from this folder by `celery -A {{ cookiecutter.project_slug }} flower`.

Flower shows task arguments and results and can revoke tasks, so it never
starts without a login: FLOWER_BASIC_AUTH is required.
"""

import os
import re
from pathlib import Path

import environ

# The same .env the Django settings read.
environ.Env.read_env(Path(__file__).resolve().parent / ".env")

_credentials = os.environ.get("FLOWER_BASIC_AUTH", "")
if not re.fullmatch(r"[^:,\s]+:[^,\s]+(,[^:,\s]+:[^,\s]+)*", _credentials):
    raise SystemExit(
        "FLOWER_BASIC_AUTH must be set to user:password (several separated by commas)"
        " to start Flower."
    )
basic_auth = _credentials.split(",")
# Loopback only unless told otherwise, e.g. FLOWER_ADDRESS=0.0.0.0 in a container.
address = os.environ.get("FLOWER_ADDRESS", "127.0.0.1")
port = int(os.environ.get("FLOWER_PORT", "5555"))
