#!/usr/bin/env python3
"""A child command for black-box tests: writes the environment it received as JSON.

Usage: report_env.py OUTFILE [EXIT_CODE]
"""

import json
import os
import sys

with open(sys.argv[1], "w", encoding="utf-8", errors="surrogateescape") as fh:
    json.dump(dict(os.environ), fh)
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
