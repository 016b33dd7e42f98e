#!/bin/bash
# The blog's docker-entrypoint.sh, adapted to N secrets for the benchmark: one
# `aws ssm get-parameters` process per secret, exactly as the original did for its one
# secret (same flags, same --query, no check of InvalidParameters). BENCH_COUNT names
# how many parameters live under the prefix: ${PARAMETER_STORE_PREFIX}/param-000 ...
set -e
PARAMETER_STORE_PREFIX=${PARAMETER_STORE_PREFIX:-}
BENCH_COUNT=${BENCH_COUNT:-0}
if [ -n "$PARAMETER_STORE_PREFIX" ]; then
  for i in $(seq -f %03g 0 $((BENCH_COUNT - 1))); do
    export PARAM_$i=$(aws ssm get-parameters --name ${PARAMETER_STORE_PREFIX}/param-$i \
      --with-decryption --query "Parameters[0].Value" --output text)
  done
fi
exec "$@"
