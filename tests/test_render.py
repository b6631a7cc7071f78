"""Every value of every option renders a clean project that migrates and passes its own tests."""

import itertools
import re
import stat
import sys

import pytest

from support.matrix import MATRIX, OPTIONS, ROWS
from support.project import PRODUCTION, assert_project_checks_pass, install_on_python, run

TEXT_SUFFIXES = {
    ".py",
    ".md",
    ".toml",
    ".example",
    ".txt",
    ".gitignore",
    ".yaml",
    ".yml",
    ".cfg",
    ".html",
    "",
}


def test_matrix_covers_every_pair_of_values():
    seen = {
        ((a, row[a]), (b, row[b])) for row in MATRIX for a, b in itertools.combinations(OPTIONS, 2)
    }
    for a, b in itertools.combinations(OPTIONS, 2):
        for pair in itertools.product(OPTIONS[a], OPTIONS[b]):
            assert ((a, pair[0]), (b, pair[1])) in seen, (a, b, pair)
    assert MATRIX[0] == {key: values[0] for key, values in OPTIONS.items()}


def text_files(root):
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
            yield path


TASKQUEUE_MIGRATIONS = ["0001_", "0002_"]
# A path in `backticks` or a Markdown link, e.g. `deploy/systemd/celery-worker.service`.
MENTIONED_PATH = re.compile(
    r"(?:`|\]\()((?:[\w.-]+/)*[\w-]+\.(?:py|md|png|svg|toml|ya?ml|service|timer))[`)]"
)
# A figure only a benchmark run can back, e.g. "133 -> 317" or "300 tasks/s".
FIGURE = re.compile(r"\d\s*(?:->|→)\s*\d|tasks/s\b")


def check_text(project):
    """No template syntax left over, no blank lines left by removed blocks, no mention of a
    file the render lacks, no benchmark figure."""
    for path in text_files(project.path):
        text = path.read_text()
        where = path.relative_to(project.path)
        for mentioned in MENTIONED_PATH.findall(text):
            found = (project.path / mentioned).exists() or (path.parent / mentioned).exists()
            assert found or "/" not in mentioned, f"{where} mentions {mentioned}, not in the render"
        assert not FIGURE.search(text), f"{where} quotes a figure: {FIGURE.search(text)[0]!r}"
        # Django templates hold {{ and {% of their own: there, look for the raw blocks.
        django_template = "templates" in where.parts
        leftovers = ("{% raw", "{% endraw") if django_template else ("{{", "{%")
        for leftover in (*leftovers, "cookiecutter"):
            assert leftover not in text, f"{where} holds {leftover!r}"
        assert not re.search(r"^[ \t]+$", text, re.M), f"{where} has a line of only spaces"
        assert text.endswith("\n") or not text, f"{where} lacks a final newline"
        if path.suffix != ".py":  # ruff format judges blank lines in Python
            assert "\n\n\n" not in text, f"{where} has two blank lines in a row"


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param(
            answers, marks=[pytest.mark.servers] if answers["database"] != "sqlite" else []
        )
        for answers in MATRIX
    ],
    ids=[row.replace(" ", "-") for row in ROWS],
)
def test_render(bake, database_url, answers):
    project = bake(**answers)
    root = project.path
    check_text(project)

    assert (root / "demoapp").exists() == (answers["include_demoapp"] == "y")
    # The README leads with first steps and links the rest, which stays without the demo.
    assert len((root / "README.md").read_text().split()) < 1000
    assert (root / "docs" / "deployment.md").exists()
    assert (root / "docs" / "dashboard.png").exists() == (answers["include_demoapp"] == "y")
    assert (root / "docs" / "trace.svg").exists() == (answers["use_opentelemetry"] == "y")
    for migrations in root.glob("*/migrations"):  # a new app's history starts clean
        numbers = sorted(p.name[:5] for p in migrations.glob("[0-9]*.py"))
        # taskqueue's is the template's: released migrations are never squashed.
        expected = TASKQUEUE_MIGRATIONS if migrations.parent.name == "taskqueue" else ["0001_"]
        assert numbers == expected, migrations
    assert (root / "flowerconfig.py").exists() == (answers["use_flower"] == "y")
    env = (root / ".env").read_text()
    assert re.search(r"^SECRET_KEY=\S{50,}$", env, re.M)
    assert stat.S_IMODE((root / ".env").stat().st_mode) == 0o600
    assert ".env" in (root / ".gitignore").read_text().splitlines()  # secrets stay local

    run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=root)
    run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."], cwd=root)

    project.env["DATABASE_URL"] = database_url(answers["database"])
    project.manage("check", "--fail-level", "WARNING")
    project.manage("makemigrations", "--check", "--dry-run")
    project.manage("migrate", "--no-input")
    if answers["result_backend"] == "django-cache":
        project.manage("createcachetable")
    project.run("-m", "pytest", "-q", "-p", "no:cacheprovider")

    project.env |= PRODUCTION
    project.manage("check", "--deploy", "--fail-level", "WARNING")


def test_each_render_has_its_own_secret_key(bake):
    first, second = bake(), bake()
    assert (first.path / ".env").read_text() != (second.path / ".env").read_text()


def test_default_project_on_python_312_with_django_6(bake, tmp_path):
    project = bake()
    install_on_python(project, "3.12", tmp_path / "venv312")
    version = project.run("-c", "import django; print(django.__version__)")
    assert version.startswith("6.0"), version
    assert_project_checks_pass(project)
