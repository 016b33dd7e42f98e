# The agent as a self-contained folder, /opt/secrets-agent: Debian's own python3.11 (linked
# statically against libpython) with the shared libraries outside glibc that it and its
# extension modules need (found through $ORIGIN RUNPATHs), and the agent, botocore with the
# models of the services it calls and the standard library modules they import, as .pyc files
# (docker/make_bundle.py). An app image takes it with one line and needs no Python:
#
#   COPY --from=secrets-agent /opt/secrets-agent /opt/secrets-agent
#   ENTRYPOINT ["/opt/secrets-agent/docker-entrypoint"]
#
# The folder must stay at /opt/secrets-agent: its program, secrets-agent (docker-entrypoint is a
# link to it), is a script whose #! line names /opt/secrets-agent/bin/python3.11; the rest finds
# itself relative to the interpreter. Build it from the root of this repository (its
# .dockerignore keeps the context small):
#   docker build -f docker/agent.Dockerfile -t secrets-agent .
# BASE_IMAGE is a Debian bookworm image with python3 (the test suite builds one offline). The
# bundle runs on glibc 2.36 or newer (Debian 12+, Ubuntu 23.04+): build on the oldest base
# you deploy on.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE} AS build

# patchelf sets the RUNPATHs; binutils strips the wheels' extension modules.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv patchelf binutils \
 && rm -rf /var/lib/apt/lists/*

# Exact versions with hashes, nothing resolved at build time.
COPY requirements/runtime.lock /src/requirements/
RUN python3 -m venv /build/venv \
 && /build/venv/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes \
      --no-deps -r /src/requirements/runtime.lock

COPY . /src/
RUN python3 -X no_debug_ranges /src/docker/make_bundle.py --source /src \
      --site-packages /build/venv/lib/python3.11/site-packages --dest /opt/secrets-agent \
 && /opt/secrets-agent/secrets-agent --version \
 && /opt/secrets-agent/docker-entrypoint --version

# Only the folder: `COPY --from` takes it into any glibc Debian or Ubuntu image.
FROM scratch
COPY --from=build /opt/secrets-agent /opt/secrets-agent
ENTRYPOINT ["/opt/secrets-agent/docker-entrypoint"]
