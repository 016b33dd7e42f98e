"""Build the images for tests/system/test_image.py without any image registry.

The base is Debian bookworm from ``debootstrap`` (minbase plus Python, Ruby, Debian's Rails and
puma), imported with ``docker import``, with the host's CA bundle and pip's ``cert`` setting in
it, so that apt, pip and gem work behind a TLS-intercepting proxy as they do on the host. It is
tagged by a hash of its recipe and of that bundle: a second run on the same daemon reuses it.
The app image is ``docker/Dockerfile`` as users copy it, built on that base.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RAILS_APP = ROOT / "tests" / "support" / "rails"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
BASE_PACKAGES = ["ca-certificates", "python3", "python3-pip", "python3-venv", "ruby"]
BASE_PACKAGES += ["ruby-rails", "puma"]
# puma 5's READY=1 (the sd_notify gem), for the handoff under SECRETS_AGENT_LISTEN.
BASE_PACKAGES += ["ruby-sd-notify"]
# The base of an app image that takes the agent as a bundle: Ruby and Rails, no Python at all.
NO_PYTHON_PACKAGES = [name for name in BASE_PACKAGES if not name.startswith("python3")]
APT_SOURCES = f"""\
Types: deb
URIs: {MIRROR}
Suites: {SUITE} {SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: {SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
# The host's pip trusts the system bundle (`pip config list`: cert); pip in the image must too,
# or its own certifi refuses the proxy's certificate.
PIP_CONF = "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"
IMPORT_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["bash"]',
]
# What goes into the build context as secrets-agent/ (the README's "vendored" layout).
AGENT_FILES = ["secrets_agent", "docker", "requirements", "pyproject.toml", "README.md", "LICENSE"]
APP_TAG = "secrets-agent-test-app:latest"
PROXY_VARIABLES = [f"{name}_proxy" for name in ("http", "https", "ftp", "no")]
PROXY_VARIABLES += [name.upper() for name in PROXY_VARIABLES]


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"docker {' '.join(args[:3])} exited {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def http_get(port: int, path: str) -> tuple[int, str]:
    """GET ``path`` of 127.0.0.1:``port``: the status and the body, an error status too."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def require_docker() -> None:
    """No daemon is a failure, never a skip: CI starts dockerd (.ci/run)."""
    if shutil.which("docker") is None:
        pytest.fail("docker is not installed: .ci/run installs docker.io and starts dockerd")
    proc = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"no docker daemon (.ci/run starts dockerd): {proc.stderr.strip()[-500:]}")


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


def base_tag(packages: list[str] = BASE_PACKAGES) -> str:
    recipe = json.dumps(
        [MIRROR, SUITE, packages, APT_SOURCES, PIP_CONF, IMPORT_CHANGES], sort_keys=True
    ).encode()
    digest = hashlib.sha256(recipe + HOST_CA_BUNDLE.read_bytes()).hexdigest()
    return f"secrets-agent-test-base:{digest[:16]}"


def build_base(packages: list[str] = BASE_PACKAGES) -> tuple[str, float]:
    """The base image's tag and the seconds it took (0.0 when reused)."""
    tag = base_tag(packages)
    if image_exists(tag):
        return tag, 0.0
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is not installed: .ci/run installs it")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="secrets-agent-base-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(packages)}",
                SUITE,
                str(rootfs),
                MIRROR,
            ],
            timeout=900,
        )
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(APT_SOURCES)
        (rootfs / "etc/pip.conf").write_text(PIP_CONF)
        # In /usr/local/share/ca-certificates the host's certificates survive every later
        # update-ca-certificates (an apt-get install in the Dockerfile may run one).
        shutil.copyfile(
            HOST_CA_BUNDLE, rootfs / "usr/local/share/ca-certificates/host-ca-bundle.crt"
        )
        run(["chroot", str(rootfs), "update-ca-certificates"], timeout=120)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        changes = [arg for change in IMPORT_CHANGES for arg in ("--change", change)]
        with subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
        ) as tar:
            imported = subprocess.run(
                ["docker", "import", *changes, "-", tag],
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        if tar.returncode != 0 or imported.returncode != 0:
            pytest.fail(f"docker import of the base failed: {imported.stderr[-2000:]}")
    return tag, time.monotonic() - started


def run(argv: list[str], *, timeout: float) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        pytest.fail(
            f"{argv[0]} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )


def build_context(base: str, where: Path) -> Path:
    """The test Rails app with this checkout vendored as secrets-agent/, and its Gemfile.lock
    resolved from the base's Debian gems (no gem server is reachable)."""
    context = where / "context"
    shutil.copytree(RAILS_APP, context)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in AGENT_FILES:
        source = ROOT / name
        target = context / "secrets-agent" / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    docker(
        "run", "--rm", "--network", "none", "-v", f"{context}:/app", "-w", "/app",
        base, "bundle", "lock", "--local",
    )  # fmt: skip
    return context


@dataclass
class Images:
    app: str
    base: str
    base_seconds: float
    app_seconds: float
    app_bytes: int


def build_images(where: Path) -> Images:
    require_docker()
    base, base_seconds = build_base()
    context = build_context(base, where)
    # The build reaches Debian and PyPI as the host does: through its network, and through its
    # proxy when it has one (Docker's predefined proxy build arguments, kept out of the image).
    proxies = [
        arg
        for name in PROXY_VARIABLES
        if name in os.environ
        for arg in ("--build-arg", f"{name}={os.environ[name]}")
    ]
    started = time.monotonic()
    docker(
        "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}", *proxies,
        "-f", str(ROOT / "docker" / "Dockerfile"), "-t", APP_TAG, str(context),
        timeout=1200,
    )  # fmt: skip
    app_seconds = time.monotonic() - started
    size = docker("image", "inspect", "--format", "{{.Size}}", APP_TAG).stdout.strip()
    return Images(APP_TAG, base, base_seconds, app_seconds, int(size))


# ---- the agent bundle (docker/agent.Dockerfile) and the recipes of docker/examples/ ----------
AGENT_TAG = "secrets-agent-test-agent:latest"
RECIPES = {
    "rails-7.1": ROOT / "docker" / "examples" / "rails-7.1.Dockerfile",
    "single-stage": ROOT / "docker" / "examples" / "single-stage.Dockerfile",
}


def proxy_args() -> list[str]:
    """Docker's predefined proxy build arguments, from the host's environment when it has them
    (kept out of the image)."""
    return [
        arg
        for name in PROXY_VARIABLES
        if name in os.environ
        for arg in ("--build-arg", f"{name}={os.environ[name]}")
    ]


def build_agent(base: str) -> float:
    """docker/agent.Dockerfile from the repository root, as its header says; the seconds."""
    started = time.monotonic()
    docker(
        "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}", *proxy_args(),
        "-f", str(ROOT / "docker" / "agent.Dockerfile"), "-t", AGENT_TAG, str(ROOT),
        timeout=1800,
    )  # fmt: skip
    return time.monotonic() - started


def recipe_context(base: str, where: Path) -> Path:
    """The test Rails app alone (no vendored agent), its Gemfile.lock from the base's gems."""
    context = where / "recipe-context"
    shutil.copytree(RAILS_APP, context)
    (context / ".dockerignore").write_text("config/credentials/*.key\ntmp/\nlog/\n")
    docker(
        "run", "--rm", "--network", "none", "-v", f"{context}:/app", "-w", "/app",
        base, "bundle", "lock", "--local",
    )  # fmt: skip
    return context


def build_recipe(name: str, base: str, context: Path) -> tuple[str, float, int]:
    """docker/examples/NAME.Dockerfile on ``base`` with the test's agent image: the tag, the
    seconds and the image's bytes."""
    tag = f"secrets-agent-test-recipe-{name.replace('.', '-')}:latest"
    started = time.monotonic()
    docker(
        "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
        "--build-arg", f"AGENT_IMAGE={AGENT_TAG}", *proxy_args(),
        "-f", str(RECIPES[name]), "-t", tag, str(context),
        timeout=1200,
    )  # fmt: skip
    seconds = time.monotonic() - started
    size = docker("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()
    return tag, seconds, int(size)


def image_bytes(tag: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
