"""The hooks: bad answers get one clear line and leave nothing behind; good ones generate."""

import subprocess
import sys

import pytest

from support.project import TEMPLATE

BAD = [
    # (answer, the key the error must name)
    ({"project_slug": "My_Project"}, "project_slug"),  # upper case
    ({"project_slug": "1project"}, "project_slug"),  # leading digit
    ({"project_slug": "_project"}, "project_slug"),  # leading underscore
    ({"project_slug": "my-project"}, "project_slug"),  # dash
    ({"project_slug": "my project"}, "project_slug"),  # space
    ({"project_slug": "   "}, "project_slug"),  # spaces only
    ({"project_slug": "café"}, "project_slug"),  # non-ASCII letter
    ({"project_slug": "проект"}, "project_slug"),  # non-Latin letters
    ({"project_slug": "x;rm -rf ~"}, "project_slug"),  # shell metacharacters
    ({"project_slug": "x$(id)"}, "project_slug"),
    ({"project_slug": "a" * 33}, "project_slug"),  # too long
    ({"project_slug": "class"}, "project_slug"),  # keyword
    ({"project_slug": "match"}, "project_slug"),  # soft keyword
    ({"project_slug": "email"}, "project_slug"),  # stdlib module
    ({"project_slug": "json"}, "project_slug"),
    ({"project_slug": "site"}, "project_slug"),
    ({"project_slug": "celery"}, "project_slug"),  # dependency
    ({"project_slug": "django"}, "project_slug"),
    ({"project_slug": "kombu"}, "project_slug"),
    ({"project_slug": "redis"}, "project_slug"),
    ({"project_slug": "environ"}, "project_slug"),
    ({"project_slug": "demoapp"}, "project_slug"),  # the demo app
    ({"project_slug": "tests"}, "project_slug"),
    ({"project_slug": "test"}, "project_slug"),
    ({"project_name": "   "}, "project_name"),  # blank name
    ({"project_name": 'My "Shop"'}, "project_name"),  # quotes
    ({"project_name": "Shop\\"}, "project_name"),  # backslash
    ({"project_name": "Shop {x}"}, "project_name"),  # braces: template syntax
    ({"project_name": "x" * 101}, "project_name"),  # too long
    ({"project_name": "../../etc"}, "project_slug"),  # path in the name
    ({"project_slug": "a\\b"}, "project_slug"),  # path separator (Windows)
    ({"project_slug": "../x"}, "project_slug"),  # a path out of the output folder
    ({"email": "not an address"}, "email"),
    ({"version": "one"}, "version"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
]
GOOD = ["shop", "my_project", "shop2", "a", "acme_tasks_2026", "x" * 32]


def generate(output, answers):
    args = [f"{key}={value}" for key, value in answers.items()]
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", output, TEMPLATE, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("answers", "key"), BAD, ids=[str(a) for a, _ in BAD])
def test_bad_answer_is_one_clear_line_and_leaves_nothing(tmp_path, answers, key):
    done = generate(tmp_path, answers)
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if line.startswith("ERROR: ")]
    ours = [line for line in ours if "Stopping generation" not in line]
    assert len(ours) == 1, done.stderr
    assert ours[0].startswith(f"ERROR: {key} "), ours[0]
    assert "for example" in ours[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("slug", GOOD)
def test_good_slug_generates(tmp_path, slug):
    done = generate(tmp_path, {"project_slug": slug})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / slug / slug / "celery.py").is_file()


def test_existing_output_folder_is_refused_and_kept(tmp_path):
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "keep.txt").write_text("mine")
    done = generate(tmp_path, {"project_slug": "shop"})
    assert done.returncode != 0
    assert "already exists" in done.stdout + done.stderr
    assert [p.name for p in (tmp_path / "shop").iterdir()] == ["keep.txt"]


def test_slug_is_derived_from_the_name(tmp_path):
    done = generate(tmp_path, {"project_name": "Acme Tasks-2"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "acme_tasks_2" / "acme_tasks_2" / "settings.py").is_file()
