"""Finish the generated project: drop the files of options not chosen, write .env.

Nothing is downloaded or installed here.
"""

import json
import secrets
import shutil
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")

# Files that belong to one answer only, removed when it is not given.
OPTIONAL = {
    ("include_demoapp", "y"): ["demoapp", "docs/dashboard.png"],
    ("use_flower", "y"): ["flowerconfig.py"],
    ("use_json_logs", "y"): ["taskqueue/logs.py", "taskqueue/tests/test_logs.py"],
    ("use_prometheus", "y"): ["taskqueue/metrics.py", "taskqueue/tests/test_metrics.py"],
    ("use_opentelemetry", "y"): [
        "docs/trace.svg",
        "taskqueue/tracing.py",
        "taskqueue/tests/test_tracing.py",
    ],
    ("use_celery_beat", "y"): [
        "deploy/systemd/celery-beat.service",
        "taskqueue/admin.py",
        "taskqueue/beat.py",
        "taskqueue/management",
        "taskqueue/migrations",
        "taskqueue/models.py",
        "taskqueue/tests/test_beat.py",
    ],
    ("result_backend", "django-cache"): ["taskqueue/tests/test_result_cache.py"],
    ("result_backend", "django-db"): [
        "taskqueue/results.py",
        "taskqueue/tests/test_results.py",
        "taskqueue/tests/test_task_backend.py",
    ],
}


def remove_unchosen(root):
    for (option, answer), paths in OPTIONAL.items():
        if ANSWERS[option] == answer:
            continue
        for path in map(root.joinpath, paths):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def secret_for(key):
    """A fresh value for an empty secret in .env.example, or None if `key` is no secret."""
    if key == "FLOWER_BASIC_AUTH":
        return f"admin:{secrets.token_urlsafe(18)}"
    if key == "SECRET_KEY":
        return secrets.token_urlsafe(50)
    if key.endswith(("_PASSWORD", "_TOKEN")):
        return secrets.token_urlsafe(24)
    return None


def write_env(root):
    """.env is .env.example with fresh secrets filled in, readable by its owner only."""
    lines = []
    for line in (root / ".env.example").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not value and (secret := secret_for(key)):
            line = f"{key}={secret}"
        lines.append(line)
    env = root / ".env"
    env.touch(mode=0o600)
    env.write_text("\n".join(lines) + "\n")


def main():
    root = Path.cwd()
    remove_unchosen(root)
    write_env(root)


if __name__ == "__main__":
    main()
