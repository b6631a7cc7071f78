"""Finish the generated project: drop the files of options not chosen, write .env.

Nothing is downloaded or installed here.
"""

import json
import secrets
import shutil
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")

# Files that belong to one option only, removed when it is not chosen.
OPTIONAL = {
    "include_demoapp": ["demoapp"],
    "use_flower": ["flowerconfig.py"],
}


def remove_unchosen(root):
    for option, paths in OPTIONAL.items():
        if ANSWERS[option] == "y":
            continue
        for path in map(root.joinpath, paths):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def write_env(root):
    """.env is .env.example with fresh secrets filled in, readable by its owner only."""
    secrets_for = {
        "SECRET_KEY=": secrets.token_urlsafe(50),
        "FLOWER_BASIC_AUTH=": f"admin:{secrets.token_urlsafe(18)}",
    }
    lines = [
        line + secrets_for[line] if line in secrets_for else line
        for line in (root / ".env.example").read_text().splitlines()
    ]
    env = root / ".env"
    env.touch(mode=0o600)
    env.write_text("\n".join(lines) + "\n")


def main():
    root = Path.cwd()
    remove_unchosen(root)
    write_env(root)


if __name__ == "__main__":
    main()
