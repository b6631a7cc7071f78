"""Upgrades keep data: a project created with cruft from each release in CHANGELOG.md,
migrated, holding data and a local edit, takes `cruft update` to the template as it is on
disk with nothing rejected, no released migration edited or gone, every row kept, and its
checks and tests passing."""

import re

import pytest

from support.project import (
    TEMPLATE,
    CommandFailed,
    Project,
    assert_project_checks_pass,
    commit_all,
    commit_template,
    cruft,
    cruft_create,
    git,
)

CHANGELOG = TEMPLATE / "CHANGELOG.md"
HEADINGS = re.findall(r"^## (.*)$", CHANGELOG.read_text(), re.MULTILINE)
RELEASE = re.compile(r"(\d{4}\.\d{2}\.\d{2}) — ([0-9a-f]{7,40})")
RELEASES = [match.groups() for match in map(RELEASE.fullmatch, HEADINGS) if match]

# What a user changes in the project: (file, text replaced or None to append, new text),
# each kept across the upgrade. The settings line is one the template leaves alone.
LOCAL_EDITS = [
    (
        "demoapp/tasks.py",
        None,
        '''

@shared_task
def widget_names():
    """Our own task: every widget's name. Idempotent: it only reads."""
    return list(Widget.objects.values_list("name", flat=True))
''',
    ),
    (
        "my_project/settings.py",
        "CELERY_RESULT_EXPIRES = timedelta(days=7)",
        "CELERY_RESULT_EXPIRES = timedelta(days=30)",
    ),
]
CONFLICT_MARKER = re.compile(rb"^(<{7}|>{7})( |$)", re.MULTILINE)


def test_changelog_names_each_release():
    """Every section but "Unreleased" is a release, `## YYYY.MM.DD — <commit>`, newest
    first: a heading written otherwise would silently drop its release from the test below."""
    assert HEADINGS[0] == "Unreleased", "the first section is Unreleased"
    malformed = [heading for heading in HEADINGS[1:] if not RELEASE.fullmatch(heading)]
    assert not malformed, f"not `## YYYY.MM.DD — <commit>`: {malformed}"
    versions = [version for version, _ in RELEASES]
    assert versions, "CHANGELOG.md lists no release"
    assert versions == sorted(set(versions), reverse=True), "releases are not newest first"


def release_commit(version, commit):
    """The release's commit in full, or the test fails in one line if this clone lacks it."""
    try:
        return git(TEMPLATE, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}").strip()
    except CommandFailed:
        pytest.fail(
            f"release {version}: commit {commit} is not in this clone"
            " (a shallow clone? `git fetch --unshallow`)",
            pytrace=False,
        )


def migration_files(folder):
    """Each app's migration files under `folder`: {path: content}."""
    paths = folder.glob("*/migrations/*.py")
    return {path.relative_to(folder): path.read_bytes() for path in paths}


def conflict_markers(folder):
    """The files git tracks or would track in `folder` that hold a conflict marker."""
    names = git(folder, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    paths = [folder / name for name in names.split("\0") if name]
    return [path for path in paths if path.is_file() and CONFLICT_MARKER.search(path.read_bytes())]


@pytest.mark.parametrize(("version", "commit"), RELEASES, ids=[v for v, _ in RELEASES])
def test_upgrade_from_release_keeps_data(version, commit, tmp_path, project_python):
    """The release's template as a git repository, then the template on disk as its next
    commit; a project created with cruft from the first, updated to the second. It runs
    on the session's environment for generated projects (the template's dependencies now,
    every extra): a release that needed a package since dropped fails its first migrate."""
    template = tmp_path / "template"
    commit_template(template, release_commit(version, commit))
    project = Project(cruft_create(template, tmp_path / "out"), python=project_python)
    project.manage("migrate", "--no-input")
    data = project.drive("hold")
    assert data["staff who may run periodic tasks"] == ["operator"]
    released = migration_files(project.path)
    for name, old, new in LOCAL_EDITS:
        path = project.path / name
        text = path.read_text()
        assert old is None or text.count(old) == 1, f"{name} no longer holds {old!r}"
        path.write_text(text + new if old is None else text.replace(old, new))
    commit_all(project.path, "our own task and settings")

    commit_template(template)  # the template as it is on disk now
    cruft(project.path, "update", "-y")

    rejected = [str(path.relative_to(project.path)) for path in project.path.rglob("*.rej")]
    assert not rejected, f"cruft update left rejected hunks: {rejected}"
    assert not conflict_markers(project.path), "cruft update left conflict markers"
    assert cruft(project.path, "check", check=False).returncode == 0, "still out of date"
    for name, _, new in LOCAL_EDITS:
        assert new in (project.path / name).read_text(), f"our edit of {name} is lost"
    edited = [
        str(name)
        for name, content in released.items()
        if (project.path / name).exists() and (project.path / name).read_bytes() != content
    ]
    assert not edited, f"released migrations edited: {edited}; add a new migration instead"

    gone = project.drive("gone-migrations")
    assert not gone, (
        f"the database applied {gone}, which no migration on disk is or replaces any more:"
        " a released migration is never deleted or renamed, and one moved to another app"
        " is named in its new place's `replaces`"
    )
    migrated = project.manage("migrate", "--no-input")
    assert project.drive("held") == data, "rows changed across the upgrade"
    assert_project_checks_pass(project)

    changed = git(project.path, "status", "--porcelain").splitlines()
    new = re.findall(r"Applying (\S+)\.\.\.", migrated)
    rows = ", ".join(f"{kind} {len(values)}" for kind, values in data.items())
    print(
        f"FIGURES upgrade from {version} ({commit}) to the working tree: rows kept: {rows};"
        f" files changed by the update: {len(changed)}; migrations it applied: {new or 'none'}"
    )
