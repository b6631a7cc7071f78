import time

from django.core.management.base import BaseCommand, CommandError

from taskqueue.beat import heartbeat_file


class Command(BaseCommand):
    help = "Fail unless celery beat ticked in the last --max-age seconds."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--max-age", type=float, default=60, help="seconds (default 60)")

    def handle(self, *args, max_age, **options):
        path = heartbeat_file()
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            raise CommandError(f"beat has not ticked: {path} does not exist") from None
        if age > max_age:
            raise CommandError(f"beat last ticked {age:.0f} s ago, more than {max_age:g} s")
        self.stdout.write(f"beat ticked {age:.0f} s ago")
