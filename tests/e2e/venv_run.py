"""Runs a test script with the test venv's Python (tests/requirements.txt),
or skips it (exit 77) saying how to make that venv.

    venv_run.py VENV_PYTHON SCRIPT ARGS...
"""
import os
import sys

python, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
if not os.access(python, os.X_OK):
    print(f"SKIP: {python} is missing; scripts/test.sh makes it "
          "(or: python3 -m venv .test-venv && .test-venv/bin/pip install -r tests/requirements.txt)")
    sys.exit(77)
os.execv(python, [python, script] + args)
