"""The web process's health check, for load balancers and compose: GET /health/.

Written here rather than taken from django-health-check (whose current release
needs Python 3.14): one query, and an answer that names nothing about the site.
"""

import logging

from django.db import Error, connection
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def health(request):
    """200 while this process can query the database, 503 when it cannot.

    The broker is left out on purpose: while it is away, pages still load and
    tasks wait to be sent, so this process should stay in service.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Error:
        logger.exception("Health check: the database does not answer")
        return HttpResponse("unavailable\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")
