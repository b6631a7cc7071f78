"""The task dashboard of the default project in headless Chromium, against real processes.

The site runs as its Procfile says (release step with collectstatic, gunicorn with DEBUG
off, a worker and beat), and as in development (runserver with DEBUG on), on the embedded
(filesystem) broker; Playwright drives Debian's Chromium from this test process. No
request of the page may fail but the one the test makes fail on purpose, and the browser
may log no error. The test saves a screenshot of the page in its
temporary folder; to refresh the one the generated project ships, name it:

    DASHBOARD_SCREENSHOT='{{cookiecutter.project_slug}}/docs/dashboard.png' \
        .venv/bin/python -m pytest tests/test_browser.py
"""

import os
import re
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright

from support.procfile import serve_as_procfile
from support.servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
# No GPU, no sandbox (root), and no traffic of its own: the page must work offline.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000

# A widget for rename_widget (the page offers id 1), a periodic task for beat to run.
SETUP = """
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from demoapp.models import Widget
Widget.objects.create(name="first widget")
every, _ = IntervalSchedule.objects.get_or_create(every=30, period=IntervalSchedule.SECONDS)
PeriodicTask.objects.create(
    name="count widgets", task="demoapp.tasks.count_widgets", interval=every
)
"""


@pytest.fixture(params=["procfile", "runserver"])
def site(request, bake):
    """The default project migrated, with a staff user, served with a worker and beat."""
    project = bake()
    project.manage("migrate", "--no-input")
    password = secrets.token_urlsafe(16)
    project.env["DJANGO_SUPERUSER_PASSWORD"] = password
    project.manage("createsuperuser", "--no-input", "--username", "admin", "--email", "a@b.org")
    del project.env["DJANGO_SUPERUSER_PASSWORD"]
    project.manage("shell", "-c", SETUP)
    if request.param == "procfile":
        return serve_as_procfile(project, ["web", "worker", "beat"]), password
    project.start_worker("worker", "--concurrency", "2")
    project.start_beat()
    port = free_port()
    project.start_web(port)
    return f"http://127.0.0.1:{port}", password


@pytest.fixture
def page():
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: scripts/install-servers installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            page.loaded, page.problems = [], []
            page.on("response", lambda r: page.loaded.append((r.status, urlsplit(r.url).path)))
            page.on("requestfailed", lambda r: page.problems.append(f"failed: {r.url}"))
            page.on("pageerror", lambda error: page.problems.append(f"error: {error}"))
            page.on("console", lambda m: m.type == "error" and page.problems.append(logged(m)))
            yield page
        finally:
            browser.close()


def logged(message):
    """A browser console message, with the path it is about."""
    return f"console: {urlsplit(message.location['url']).path}: {message.text}"


def start(page, task, **fields):
    """Fill in and submit a task's start form; return its row in "Started from this page"."""
    form = page.locator("form.start", has=page.locator(f'input[name="task"][value="{task}"]'))
    for name, value in fields.items():
        form.locator(f'[name="{name}"]').fill(str(value))
    rows = page.locator("#started tbody tr:not(.empty)")
    count = rows.count()
    form.get_by_role("button", name="Start").click()
    expect(rows).to_have_count(count + 1)
    task_id = rows.first.locator(".id").get_attribute("title")
    return page.locator(f'#started tbody tr:has(code[title="{task_id}"])')


def progress_values(row, until):
    """The progress bar's value at each look until the task's state is `until`."""
    values = []
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while row.locator(".state").inner_text() != until:
        assert time.monotonic() < deadline, f"state stuck at {row.locator('.state').inner_text()}"
        value = row.locator("progress").evaluate("bar => (bar.hidden ? null : bar.value)")
        if value is not None and (not values or value != values[-1]):
            values.append(value)
        time.sleep(0.2)
    return values


def test_dashboard_starts_tasks_and_shows_their_progress_and_results(site, page, tmp_path):
    url, password = site
    page.goto(f"{url}/tasks/")
    expect(page).to_have_url(f"{url}/admin/login/?next=/tasks/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{url}/tasks/")
    page.wait_for_load_state("load")  # its script and style sheets have arrived
    # The admin's style sheet and the dashboard's script and style, under hashed names
    # when DEBUG is off.
    for static in ("admin/css/base", "demoapp/tasks"):
        assert any(
            re.fullmatch(rf"/static/{static}(\.[0-9a-f]{{12}})?\.(css|js)", path) and status == 200
            for status, path in page.loaded
        ), (static, page.loaded)

    add = start(page, "add", x=2, y=3)
    expect(add.locator(".state")).to_have_text("SUCCESS")
    expect(add.locator(".outcome")).to_have_text("5")
    expect(add.locator(".task")).to_have_text("add(x=2, y=3)")

    long = start(page, "long_task", steps=5)
    values = progress_values(long, until="SUCCESS")
    assert len(values) >= 2, values
    assert values == sorted(values), values
    expect(long.locator("progress")).to_have_attribute("value", "5")
    expect(long.locator(".outcome")).to_have_text('{"current":5,"total":5}')

    # Bad input gets the view's message, naming the field; nothing is started.
    start_error = page.locator("#start-error")
    page.locator('form.start:has(input[value="xsum"]) [name="numbers"]').fill("1, two")
    page.locator('form.start:has(input[value="xsum"])').get_by_role("button").click()
    expect(start_error).to_have_text("numbers: Enter whole numbers separated by commas.")
    assert (400, "/tasks/start/") in page.loaded

    # A reload lists what finished in the results table, and beat's periodic task.
    page.reload()
    results = page.locator("section", has=page.get_by_role("heading", name="Recent results"))
    for task in ("add", "long_task"):
        row = results.locator("tr", has_text=f"demoapp.tasks.{task}")
        expect(row.locator(".state")).to_have_text("SUCCESS")
    periodic = page.locator("section", has=page.get_by_role("heading", name="Periodic tasks"))
    expect(periodic.locator("tr", has_text="count widgets")).to_contain_text("every 30 seconds")

    # The state the screenshot shows: a few finished, one failed, a long task under way.
    finished = [
        start(page, "mul", x=6, y=7),
        start(page, "xsum", numbers="1, 2, 3, 4"),
        start(page, "count_widgets"),
        start(page, "rename_widget", widget_id=1, name="blue widget"),
    ]
    for row in finished:
        expect(row.locator(".state")).to_have_text("SUCCESS")
    failed = start(page, "rename_widget", widget_id=99, name="ghost")
    expect(failed.locator(".state")).to_have_text("FAILURE")
    expect(failed.locator(".outcome")).to_contain_text("Widget 99 does not exist")
    long = start(page, "long_task", steps=10)
    expect(long.locator("progress")).to_have_attribute("value", re.compile("^[4-9]$"))

    failed = [(status, path) for status, path in page.loaded if status >= 400]
    assert failed == [(400, "/tasks/start/")], failed
    # Chromium logs the 400 as a failed resource, and the favicon it asks for by itself (the
    # site has none); nothing else.
    expected = {"/tasks/start/": "status of 400", "/favicon.ico": "status of 404"}
    for problem in page.problems:
        _, path, text = problem.split(": ", 2)
        assert expected.get(path, "unexpected") in text, page.problems

    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=screenshot, full_page=True)
    assert screenshot.stat().st_size > 10_000
    if target := os.environ.get("DASHBOARD_SCREENSHOT"):
        Path(target).write_bytes(screenshot.read_bytes())
