# Sourced by scripts/test and scripts/demo: $root/.venv with the template's tooling.
if ! command -v uv >/dev/null 2>&1; then
    python3 -m pip install --quiet uv
fi
uv venv --quiet --allow-existing --python python3 "$root/.venv"
# Compiled as pip would: uv does not by default, and where PYTHONDONTWRITEBYTECODE is set
# every process would compile its imports again.
uv pip install --quiet --compile-bytecode --python "$root/.venv/bin/python" \
    -r "$root/tests/requirements.txt"
