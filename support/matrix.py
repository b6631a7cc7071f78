"""The answers the tests generate projects with: test_render.py renders each row and checks
that every pair of values is in one; test_deploy.py and test_lifecycle.py check each row's
deployment and CI files."""

OPTIONS = {
    "broker": ["filesystem", "redis", "rabbitmq"],
    "database": ["sqlite", "postgresql", "mysql"],
    "result_backend": ["django-db", "django-cache"],
    "use_celery_beat": ["y", "n"],
    "use_flower": ["n", "y"],
    "include_demoapp": ["y", "n"],
    "use_json_logs": ["n", "y"],
    "use_sentry": ["n", "y"],
    "use_prometheus": ["n", "y"],
    "use_opentelemetry": ["n", "y"],
}
# Every pair of values of two options appears in at least one row (the first row is the default).
ROWS = [
    "filesystem sqlite django-db y n y n n n n",
    "filesystem postgresql django-cache n y n n n y y",
    "redis mysql django-db y y n n n n n",
    "rabbitmq mysql django-cache n n y n n n y",
    "redis sqlite django-cache n n n n y y y",
    "rabbitmq postgresql django-db y y y n y n n",
    "redis postgresql django-db n n y y n n n",
    "rabbitmq sqlite django-cache y y n y n y n",
    "filesystem mysql django-db y n y y y y y",
]
MATRIX = [dict(zip(OPTIONS, row.split(), strict=True)) for row in ROWS]
