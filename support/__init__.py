"""What the template's tests, bench/ and scripts/demo share.

    project.py      a generated project on disk and the processes it runs
    servers.py      real Redis, PostgreSQL, RabbitMQ and MariaDB servers, on free ports
    matrix.py       the option combinations the tests generate projects with
    procfile.py     the default project served as its Procfile says
    demo.py         scripts/demo

Run inside a generated project, with its interpreter, as `python -m support.MODULE` from its
folder (Project.run(..., support=True) puts this repository on PYTHONPATH):

    drive.py        sends tasks and reads their results, for the tests and the demo
    faults_drive.py the same for the fault tests (test_faults.py)
    inproject.py    the benchmark's measures (bench/)
"""
