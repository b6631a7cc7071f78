"""Reject answers that would generate a broken project, before any file is written.

Each problem is reported as one line naming the answer and showing a valid
example; cookiecutter then removes the folder it created.
"""

import json
import keyword
import re
import sys
import zoneinfo

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")

# Modules the generated project imports, or installs, besides the stdlib:
# a project package with one of these names would shadow it.
TAKEN = {
    "amqp",
    "billiard",
    "celery",
    "click",
    "demoapp",
    "django",
    "django_celery_beat",
    "django_celery_results",
    "django_tasks",
    "django_timezone_field",
    "environ",
    "flower",
    "kombu",
    "manage",
    "prometheus_client",
    "MySQLdb",
    "opentelemetry",
    "psycopg",
    "pytest",
    "pytest_django",
    "pythonjsonlogger",
    "redis",
    "ruff",
    "sentry_sdk",
    "support",
    "taskqueue",
    "test",
    "tests",
    "timezone_field",
    "tornado",
    "vine",
}
# Long enough for a name, short enough for a MySQL user name and a line.
SLUG_MAX = 32


def slug_problem(slug):
    if not re.fullmatch(r"[a-z][a-z0-9_]*", slug):
        return "must start with a lowercase ASCII letter and hold only a-z, 0-9 and _"
    if len(slug) > SLUG_MAX:
        return f"is longer than {SLUG_MAX} characters"
    if keyword.iskeyword(slug) or keyword.issoftkeyword(slug):
        return "is a Python keyword"
    if slug in sys.stdlib_module_names:
        return "would shadow the Python standard library module of that name"
    if slug in TAKEN:
        return "would shadow a module the project imports"
    return None


def text_problem(value):
    if not value.strip():
        return "is empty"
    if len(value) > 100:
        return "is longer than 100 characters"
    if any(ch in value for ch in '"\\{}') or not value.isprintable():
        return 'must not hold quotes ("), backslashes, braces or control characters'
    return None


def problems(answers):
    for key in ("project_name", "description", "author_name"):
        if problem := text_problem(answers[key]):
            yield key, answers[key], problem, "My Project"
    if problem := slug_problem(answers["project_slug"]):
        yield "project_slug", answers["project_slug"], problem, "my_project"
    if not re.fullmatch(r"[^@\s\"\\]+@[^@\s\"\\]+\.[A-Za-z]{2,}", answers["email"]):
        yield "email", answers["email"], "is not an e-mail address", "you@example.com"
    if not re.fullmatch(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", answers["version"]):
        yield "version", answers["version"], "is not a PEP 440 version", "0.1.0"
    if answers["timezone"] not in zoneinfo.available_timezones():
        yield "timezone", answers["timezone"], "is not an IANA time zone", "Europe/Paris"


def main():
    for key, value, problem, example in problems(ANSWERS):
        print(f"ERROR: {key} {value!r} {problem}; for example {example!r}.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
