"""The worker has no database: it must not pay for the Postgres driver (about 9 MB of RSS)
through a shared module that imports it for other services."""

import subprocess
import sys


def test_the_worker_does_not_load_the_postgres_driver():
    code = (
        "import sys, ai_worker.app, ai_worker.__main__\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('psycopg', 'psycopg_pool', 'psycopg_binary'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
