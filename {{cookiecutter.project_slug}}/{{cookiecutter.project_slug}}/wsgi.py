"""
WSGI config for {{ cookiecutter.project_name }}.

It exposes the WSGI callable as a module-level variable named ``application``.

https://docs.djangoproject.com/en/5.2/howto/deployment/wsgi/
"""

import os

from django.core.wsgi import get_wsgi_application
{%- if cookiecutter.use_opentelemetry == "y" %}

from taskqueue.tracing import start_tracing
{%- endif %}

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{{ cookiecutter.project_slug }}.settings")
{%- if cookiecutter.use_opentelemetry == "y" %}
# Before the application loads its middleware: tracing adds its own.
start_tracing()
{%- endif %}

application = get_wsgi_application()
