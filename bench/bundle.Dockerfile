# The two ways to put the agent into an image, side by side, for bench/bundle.py: on a base
# without Python, the virtualenv route of docker/Dockerfile (Debian's python3 and python3-venv,
# then the runtime lock and the agent) and the bundle of docker/agent.Dockerfile. Each is one
# layer or two, so `docker history` gives what each adds. Build from the repository root:
#   docker build -f bench/bundle.Dockerfile --build-arg BASE_IMAGE=... --build-arg AGENT_IMAGE=... .
ARG BASE_IMAGE
ARG AGENT_IMAGE
FROM ${AGENT_IMAGE} AS secrets-agent

FROM ${BASE_IMAGE}
# layer: the interpreter (what the virtualenv route needs besides the virtualenv)
# (apt's caches removed, as ruby:*-slim's docker-clean setting does, so only the packages count)
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY . /src/
# layer: the virtualenv, as docker/Dockerfile makes it (pip and setuptools stay inside)
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes \
      --no-deps -r /src/requirements/runtime.lock -r /src/requirements/build.lock \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
      --no-build-isolation /src \
 && install -m 0755 /src/docker/docker-entrypoint.py /opt/venv/bin/docker-entrypoint.py \
 && sed -i '1s|.*|#!/opt/venv/bin/python3|' /opt/venv/bin/docker-entrypoint.py \
 && rm -rf /src
# layer: the bundle
COPY --from=secrets-agent /opt/secrets-agent /opt/secrets-agent
