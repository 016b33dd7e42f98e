#!/usr/bin/env python3
"""The plain alternative: one boto3 client, GetParametersByPath paginated, then execvp.

What a team would write in ten minutes instead of the agent: no validation, no error
mapping, no references. Name rule: what follows the prefix, non-alphanumerics to ``_``,
upper-cased. With ``BENCH_HOLD`` set it prints ``ready`` and sleeps instead of exec'ing,
so that the benchmark can read its resident memory.
"""

import os
import re
import signal
import sys

import boto3


def main() -> None:
    prefix = os.environ.get("PARAMETER_STORE_PREFIX", "")
    if prefix:
        client = boto3.client("ssm")
        pages = client.get_paginator("get_parameters_by_path").paginate(
            Path=prefix, Recursive=True, WithDecryption=True
        )
        for page in pages:
            for param in page["Parameters"]:
                rest = param["Name"][len(prefix) :]
                name = re.sub(r"[^A-Za-z0-9]+", "_", rest).strip("_").upper()
                os.environ[name] = param["Value"]
    if os.environ.get("BENCH_HOLD"):
        print("ready", flush=True)
        signal.pause()
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
