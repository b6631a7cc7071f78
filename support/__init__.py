"""What the tests, the benchmark and scripts/demo import: generated projects and the
processes they run (project.py), real servers (servers.py), the demo (demo.py)."""
