# The agent as a self-contained folder, /opt/secrets-agent: a PyInstaller onedir bundle (the
# interpreter, the agent, botocore with the models of the services it calls), as the AWS CLI v2
# ships botocore. An app image takes it with one line and needs no Python:
#
#   COPY --from=secrets-agent /opt/secrets-agent /opt/secrets-agent
#   ENTRYPOINT ["/opt/secrets-agent/docker-entrypoint"]
#
# Build it from the root of this repository (its .dockerignore keeps the context small):
#   docker build -f docker/agent.Dockerfile -t secrets-agent .
# BASE_IMAGE is a Debian bookworm image with python3 (the test suite builds one offline). The
# bundle runs on glibc 2.36 or newer (Debian 12+, Ubuntu 23.04+): build on the oldest base
# you deploy on.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE} AS build

# libpython3.11: PyInstaller bundles the shared interpreter library; binutils: it inspects and
# strips the binaries it collects.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv libpython3.11 binutils \
 && rm -rf /var/lib/apt/lists/*

# Exact versions with hashes, nothing resolved at build time: the runtime lock and PyInstaller.
COPY requirements/runtime.lock requirements/bundle.lock /src/requirements/
RUN python3 -m venv /build/venv \
 && /build/venv/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes \
      --no-deps -r /src/requirements/runtime.lock -r /src/requirements/bundle.lock

COPY . /src/
RUN /build/venv/bin/pyinstaller --noconfirm --log-level WARN --distpath /opt \
      --workpath /build/work /src/docker/secrets-agent.spec \
 && ln -s secrets-agent /opt/secrets-agent/docker-entrypoint \
 && /opt/secrets-agent/secrets-agent --version \
 && /opt/secrets-agent/docker-entrypoint --version

# Only the folder: `COPY --from` takes it into any glibc Debian or Ubuntu image.
FROM scratch
COPY --from=build /opt/secrets-agent /opt/secrets-agent
ENTRYPOINT ["/opt/secrets-agent/docker-entrypoint"]
