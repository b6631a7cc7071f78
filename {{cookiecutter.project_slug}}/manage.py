#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    """Run administrative tasks."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{{ cookiecutter.project_slug }}.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise SystemExit(
            "Django is not importable: activate this project's virtual "
            "environment, or install the project with `pip install -e .`."
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
