# Sourced by scripts/test and scripts/demo: make .venv with the template's tooling.
if ! command -v uv >/dev/null 2>&1; then
    python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
    export PATH="$HOME/.local/bin:$PATH"
fi
uv venv --quiet --allow-existing --python python3 .venv
uv pip install --quiet --python .venv/bin/python -r tests/requirements.txt
