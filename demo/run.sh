#!/usr/bin/env bash
# Demo: a local moto server stands in for AWS. Stores SecureStrings the way the old entrypoint script
# named them (myapp-rails.secret.key.base) and in a path (/myapp/prod/...), then runs
# the real entrypoint with a command that prints the names it received and a hash of each value.
set -euo pipefail
cd "$(dirname "$0")/.."
# The agent and the moto server from the lock, in a virtualenv of the demo's own.
venv=.venv-demo
if [ ! -x "$venv/bin/python" ] || ! cmp -s requirements/test.lock "$venv/.lock"; then
  echo "demo: installing the locked dependencies into $venv (about a minute, once)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes --no-deps \
    -r requirements/test.lock >&2
  cp requirements/test.lock "$venv/.lock"
fi
py=$venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$py -m moto.server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null; wait $moto_pid 2>/dev/null || true' EXIT

export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_DEFAULT_REGION=ap-northeast-1
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true
for _ in $(seq 1 100); do
  $py -c "import urllib.request; urllib.request.urlopen('$AWS_ENDPOINT_URL/moto-api/', timeout=1)" 2>/dev/null && break
  sleep 0.2
done

$py - <<'PY'
import os, botocore.session
ssm = botocore.session.get_session().create_client("ssm")
for name, value in {
    "myapp-rails.secret.key.base": "demo-secret-key-base-0123456789abcdef",
    "myapp-rails.database.url": "postgres://myapp:demo@db/myapp",
    "/myapp/prod/secret_key_base": "demo-secret-key-base-from-a-path",
    "/myapp/prod/smtp/password": "demo-smtp-password",
    "/myapp/production/not_loaded": "demo-not-under-the-prefix",
}.items():
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
PY

show='import hashlib, os
for k in ("SECRET_KEY_BASE", "DATABASE_URL", "SMTP_PASSWORD", "NOT_LOADED"):
    v = os.environ.get(k)
    print(f"  {k:16} " + ("(not set)" if v is None else "sha256:" + hashlib.sha256(v.encode()).hexdigest()[:16]))'

echo "== name-prefix mode: PARAMETER_STORE_PREFIX=myapp-rails (the old script's names)"
PARAMETER_STORE_PREFIX=myapp-rails SECRETS_AGENT_LOG_FORMAT=text \
  $py docker/docker-entrypoint.py $py -c "$show"
echo "== path mode: PARAMETER_STORE_PREFIX=/myapp/prod"
PARAMETER_STORE_PREFIX=/myapp/prod SECRETS_AGENT_LOG_FORMAT=text \
  $py docker/docker-entrypoint.py $py -c "$show"
echo "== check (names, sources, versions; never values)"
PARAMETER_STORE_PREFIX=/myapp/prod SECRETS_AGENT_LOG_LEVEL=warning $py -m secrets_agent check
echo "== a wrong prefix fails closed (exit 66) and the command never runs"
set +e
PARAMETER_STORE_PREFIX=myapp SECRETS_AGENT_LOG_FORMAT=text \
  $py docker/docker-entrypoint.py echo "this never prints"
echo "  exit code: $?"
