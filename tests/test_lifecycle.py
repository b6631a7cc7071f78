"""A generated project that stays current: its own CI files are valid for every render,
Django 6.1 where the dependencies allow it, Python 3.13, and template updates with cruft."""

import json
import sys
from pathlib import Path

import pytest
import yaml
from cookiecutter.main import cookiecutter

from support.matrix import MATRIX, ROWS
from support.project import (
    TEMPLATE,
    assert_project_checks_pass,
    commit_template,
    cruft,
    cruft_create,
    git,
    install_on_python,
    run,
    tool,
)


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    """Every row of the render matrix, rendered once: {row id: project folder}."""
    out = tmp_path_factory.mktemp("lifecycle")
    projects = {}
    for row, answers in zip(ROWS, MATRIX, strict=True):
        row_id = row.replace(" ", "-")
        folder = cookiecutter(
            str(TEMPLATE), no_input=True, output_dir=str(out / row_id), extra_context=answers
        )
        projects[row_id] = Path(folder)
    return projects


def each(renders, relative):
    return [str(root / relative) for root in renders.values()]


def test_workflow_passes_actionlint(renders):
    run([tool("actionlint"), "-no-color", *each(renders, ".github/workflows/ci.yml")])


def test_workflow_matches_github_schema(renders):
    workflows = each(renders, ".github/workflows/ci.yml")
    run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows])


def test_dependabot_matches_its_schema(renders):
    files = each(renders, ".github/dependabot.yml")
    run([tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", *files])
    for path in files:
        ecosystems = {
            u["package-ecosystem"] for u in yaml.safe_load(Path(path).read_text())["updates"]
        }
        assert ecosystems == {"pip", "github-actions"}, path


def test_pre_commit_config_is_valid(renders):
    files = each(renders, ".pre-commit-config.yaml")
    run([sys.executable, "-m", "pre_commit", "validate-config", *files])
    for path in files:
        hooks = {
            h["id"]
            for repo in yaml.safe_load(Path(path).read_text())["repos"]
            for h in repo["hooks"]
        }
        assert hooks == {"ruff-check", "ruff-format"}, path


def test_pre_commit_runs_a_released_ruff(renders):
    # ruff-pre-commit tags each ruff release v<version>; GitHub is not reachable from
    # here, the package index is.
    listed = run([sys.executable, "-m", "pip", "index", "versions", "ruff"])
    released = listed.split("Available versions:")[1].split("\n")[0].strip().split(", ")
    for path in each(renders, ".pre-commit-config.yaml"):
        (ruff,) = yaml.safe_load(Path(path).read_text())["repos"]
        assert ruff["repo"] == "https://github.com/astral-sh/ruff-pre-commit", path
        assert ruff["rev"].removeprefix("v") in released, (path, ruff["rev"])


SERVICES = {"postgresql": "postgres", "mysql": "mariadb", "redis": "redis", "rabbitmq": "rabbitmq"}
URL_SCHEMES = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql"}
BROKER_SCHEMES = {"filesystem": "filesystem", "redis": "redis", "rabbitmq": "amqp"}


@pytest.mark.parametrize("index", range(len(MATRIX)), ids=[r.replace(" ", "-") for r in ROWS])
def test_workflow_runs_what_the_project_needs(renders, index):
    """Service containers for this render's broker and database only, each with a health
    check; the URLs that reach them; the steps the issue lists, in order."""
    answers = MATRIX[index]
    root = renders[ROWS[index].replace(" ", "-")]
    job = yaml.safe_load((root / ".github/workflows/ci.yml").read_text())["jobs"]["test"]
    expected = {SERVICES[answers[k]] for k in ("database", "broker") if answers[k] in SERVICES}
    services = job.get("services", {})
    assert set(services) == expected
    for name, service in services.items():
        assert "--health-cmd" in service["options"], name
    assert job["env"]["DATABASE_URL"].startswith(URL_SCHEMES[answers["database"]] + "://")
    assert job["env"]["CELERY_BROKER_URL"].startswith(BROKER_SCHEMES[answers["broker"]] + "://")

    commands = [step["run"] for step in job["steps"] if "run" in step]
    extras = ["dev"]
    extras += ["redis"] if answers["broker"] == "redis" else []
    extras += [answers["database"]] if answers["database"] != "sqlite" else []
    assert f"pip install -e '.[{','.join(extras)}]'" in commands
    wanted = [
        "ruff check .",
        "ruff format --check .",
        "python manage.py check --fail-level WARNING",
        "python manage.py makemigrations --check --dry-run",
        *(
            ["python manage.py createcachetable"]
            if answers["result_backend"] == "django-cache"
            else []
        ),
        "pytest",
    ]
    assert [c for c in commands if c in wanted] == wanted


def test_project_without_beat_on_python_312_runs_django_61(bake, tmp_path):
    """Without django-celery-beat, nothing holds Django below 6.1."""
    project = bake(use_celery_beat="n")
    install_on_python(project, "3.12", tmp_path / "venv312")
    version = project.run("-c", "import django; print(django.__version__)")
    assert version.startswith("6.1."), version
    assert_project_checks_pass(project)


def test_default_project_on_python_313(bake, tmp_path):
    project = bake()
    install_on_python(project, "3.13", tmp_path / "venv313")
    beat = project.run(
        "-c",
        "import importlib.metadata as m; print(m.version('django-celery-beat'))",
    )
    assert beat.startswith("2.9"), beat  # not the silent fallback to beat 2.1
    assert_project_checks_pass(project)


README_LINE = "Tasks are queued through"


def test_cruft_update_brings_template_changes_and_keeps_local_edits(tmp_path):
    """Create with cruft, commit, edit locally; the template changes the same file
    elsewhere; `cruft update` merges both, with no rejected hunk and .env untouched."""
    # The template as it is on disk, as a git repository of its own.
    template = tmp_path / "template"
    commit_template(template)

    project = cruft_create(template, tmp_path / "out")
    assert json.loads((project / ".cruft.json").read_text())["template"] == str(template)
    assert not git(project, "ls-files", ".env"), ".env must stay out of git"
    env_before = (project / ".env").read_bytes()

    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\n## Our notes\n\nKept by us.\n")
    git(project, "commit", "-q", "-am", "local notes")

    template_readme = template / "{{cookiecutter.project_slug}}" / "README.md"
    text = template_readme.read_text()
    assert README_LINE in text
    template_readme.write_text(text.replace(README_LINE, f"(New) {README_LINE}"))
    git(template, "commit", "-q", "-am", "README: a change upstream")

    assert cruft(project, "check", check=False).returncode != 0, "out of date, yet check passed"
    cruft(project, "update", "-y")

    merged = readme.read_text()
    assert f"(New) {README_LINE}" in merged, "template change missing"
    assert merged.endswith("## Our notes\n\nKept by us.\n"), "local edit lost"
    assert "<<<<<<<" not in merged
    assert not list(project.rglob("*.rej")), "rejected hunks"
    assert (project / ".env").read_bytes() == env_before, ".env changed"
    assert cruft(project, "check", check=False).returncode == 0, "still out of date"
