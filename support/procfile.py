"""The default project served as its Procfile says, and what the tests ask of it over HTTP:
used by test_production.py and test_browser.py."""

import http.client
import time
from urllib.parse import urlencode, urlsplit

from support.project import run
from support.servers import free_port

DEADLINE = 60  # seconds to wait for a process to come up or a check to change


def procfile(project):
    return dict(
        line.split(": ", 1) for line in (project.path / "Procfile").read_text().splitlines()
    )


def spawn(project, name, command):
    """Run a shell command line in the background as `name`, as a platform would."""
    return project.launch(name, ["sh", "-c", f"exec {command}"])


def get(url, headers=None):
    """(status, headers, body) of a GET, redirects not followed."""
    return request("GET", url, headers)


def post(url, form, headers=None):
    """(status, headers, body) of a POST of the dict `form`, redirects not followed."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"} | (headers or {})
    return request("POST", url, headers, urlencode(form))


def request(method, url, headers=None, body=None):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, parts.path, body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def wait_until(predicate, what, process=None):
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if process and process.popen.poll() is not None:
            raise AssertionError(f"{process.name} exited:\n{process.output()[-4000:]}")
        assert time.monotonic() < deadline, f"{what} within {DEADLINE} s"
        time.sleep(0.2)


def serve_as_procfile(project, processes=("web",), https=False):
    """Run the Procfile's release step, then its processes; return the site's URL.

    DEBUG is off, as on a platform. SECURE_SSL_REDIRECT=false unless `https`: no TLS proxy
    in front."""
    entries = procfile(project)
    port = free_port()
    project.env |= {"DEBUG": "false", "PORT": str(port)}
    if not https:
        project.env["SECURE_SSL_REDIRECT"] = "false"
    run(["sh", "-c", entries["release"]], cwd=project.path, env=project.environ())
    url = f"http://127.0.0.1:{port}"
    for name in processes:
        # 127.0.0.1 rather than every interface: the test serves nobody else.
        process = spawn(project, name, entries[name].replace("0.0.0.0:", "127.0.0.1:"))
        if name == "web":
            wait_until(lambda: answers(f"{url}/health/"), "gunicorn to answer", process)
        elif name == "worker":
            process.wait_for("ready.")
        elif name == "beat":
            process.wait_for("beat: Starting...")
    return url


def answers(url):
    try:
        return get(url)[0] == 200
    except OSError:
        return False
