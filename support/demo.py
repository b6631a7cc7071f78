"""The README's first command: the whole job on the embedded default, with real processes.

    scripts/demo [FOLDER]

Generates a project with the default answers into FOLDER (default: ./demo), installs it
into its own virtual environment, migrates, starts a worker and beat, runs the demo tasks
and a periodic task, prints their results as stored in the database, and stops what it
started.
"""

import argparse
import json
import shutil
import socket
import sys
from pathlib import Path

from cookiecutter.main import cookiecutter

from support.project import TEMPLATE, Project, make_venv


def scenario(project, beat=True):
    """Migrate, start a worker (and beat), run the demo tasks and a periodic task."""
    project.manage("migrate", "--no-input")
    try:
        project.start_worker("worker", "--concurrency", "2")
        if beat:
            project.start_beat()
        outcome = {"demo": project.drive("demo")}
        # Naming the node lets ping return on its answer instead of waiting out the timeout.
        node = f"worker@{socket.gethostname()}"
        outcome["ping"] = project.celery(
            "inspect", "ping", "--destination", node, "--timeout", "10"
        )
        if beat:
            outcome["periodic"] = project.drive("periodic")
        return outcome
    finally:
        project.stop_all()


def generate(folder):
    """A default project in `folder`, installed from its own pyproject.toml into .venv."""
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(folder)))
    python = make_venv(path / ".venv", sys.executable, editable=path)
    return Project(path, python=python)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="demo", type=Path)
    folder = parser.parse_args().folder.resolve()
    if (folder / "my_project").exists():
        shutil.rmtree(folder / "my_project")
    print(f"Generating the default project into {folder} and installing it ...", flush=True)
    project = generate(folder)
    print("Migrating, starting a worker and beat, sending the demo tasks ...", flush=True)
    outcome = scenario(project)
    print("\nResults stored by django-celery-results (TaskResult rows):")
    for row in outcome["demo"]["results"]:
        print(f"  {row['task_name']:<28} {row['status']:<8} {json.dumps(row['result']):<10}"
              f" done {row['date_done']}")  # fmt: skip
    periodic = outcome["periodic"]
    print(f"\nPeriodic task {periodic['name']!r} ran {periodic['runs']} time(s) from beat:"
          f" widget now {periodic['result']!r}")  # fmt: skip
    print(f"\ncelery inspect ping:\n  {outcome['ping'].strip()}")
    print(f"""
All processes stopped. To go on by hand:

  cd {project.path}
  . .venv/bin/activate
  celery -A {project.slug} worker -l info     # in one terminal
  celery -A {project.slug} beat -l info       # in another
  python manage.py createsuperuser && python manage.py runserver
""")


if __name__ == "__main__":
    main()
