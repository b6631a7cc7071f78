"""A generated project's settings with a benchmark variant's changes on top.

Used as DJANGO_SETTINGS_MODULE (bench/ on PYTHONPATH), so variants are measured without
editing the template. BENCH_BASE_SETTINGS names the project's own settings module;
BENCH_SETTINGS is a JSON object of changes, applied in order:

    "NAME": value              set a setting ("{BASE_DIR}" in a string: the project's folder)
    "NAME.key.key": value      set an item in a dict setting: DATABASES.default.CONN_MAX_AGE
    "-PREFIX": null            delete every setting whose name starts with PREFIX, e.g. "-CELERY_"
    "BENCH_UNFLUSHED": true    os.fsync and os.fdatasync do nothing in the variant's processes
"""

import importlib
import json
import os

_base = importlib.import_module(os.environ["BENCH_BASE_SETTINGS"])
globals().update({name: getattr(_base, name) for name in dir(_base) if name.isupper()})


def _resolve(value):
    if isinstance(value, dict):
        return {key: _resolve(item) for key, item in value.items()}
    if isinstance(value, str):
        return value.replace("{BASE_DIR}", str(globals()["BASE_DIR"]))
    return value


def _apply(changes):
    for key, value in changes.items():
        value = _resolve(value)
        if key.startswith("-"):
            for name in [n for n in globals() if n.startswith(key[1:])]:
                del globals()[name]
        elif "." in key:
            *path, last = key.split(".")
            target = globals()
            for part in path:
                target = target.setdefault(part, {})
            target[last] = value
        else:
            globals()[key] = value


_apply(json.loads(os.environ.get("BENCH_SETTINGS", "{}")))

if globals().get("BENCH_UNFLUSHED"):  # the cost of flushing, measured by leaving it out
    os.fsync = os.fdatasync = lambda fd: None
