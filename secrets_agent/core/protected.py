"""The names the agent never sets, from any source: the one place this data lives.

Whoever can write one parameter or secret under a prefix chooses a variable name. A name that
changes how a program starts (``SHELLOPTS``, ``PS4``, ``LD_PRELOAD``, ``GIT_SSH_COMMAND``, ...)
would let that writer run code in, or print the secrets of, every process the app starts.
``docs/threat-model.md`` explains the model and cites each source below.

A name ending in ``*`` is a pattern: ``*`` matches any run of characters (also none). Names
compare case-insensitively: ``http_proxy`` is read as ``HTTP_PROXY`` is, and zsh ties ``path``
to ``PATH``. Pure data and ``re``: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: A valid environment variable name: the one home of this rule.
VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

#: sudo, plugins/sudoers/env.c, ``initial_badenv_table``: what sudo deletes from a command's
#: environment, every platform's entries included (``DYLD_*`` is macOS's, ``LDR_*`` AIX's).
SUDO_BADENV = (
    "IFS", "CDPATH", "LOCALDOMAIN", "RES_OPTIONS", "HOSTALIASES", "NLSPATH", "PATH_LOCALE",
    "LD_*", "_RLD*", "SHLIB_PATH", "LDR_*", "LIBPATH", "AUTHSTATE", "DYLD_*",
    "KRB5_CONFIG*", "KRB5_KTNAME", "VAR_ACE", "USR_ACE", "DLC_ACE",
    "TERMINFO", "TERMINFO_DIRS", "TERMPATH", "TERMCAP", "ENV", "BASH_ENV", "PS4",
    "GLOBIGNORE", "SHELLOPTS", "JAVA_TOOL_OPTIONS", "PERLIO_DEBUG", "PERLLIB", "PERL5LIB",
    "PERL5OPT", "PERL5DB", "FPATH", "NULLCMD", "READNULLCMD", "ZDOTDIR", "TMPPREFIX",
    "PYTHONHOME", "PYTHONPATH", "PYTHONINSPECT", "PYTHONUSERBASE", "RUBYLIB", "RUBYOPT",
    "BASH_FUNC_*", "__BASH_FUNC<*",
)  # fmt: skip

#: glibc, sysdeps/generic/unsecvars.h, ``UNSECURE_ENVVARS``: what the dynamic loader removes
#: for set-user-ID programs.
GLIBC_UNSECURE = (
    "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LD_AUDIT", "LD_DEBUG",
    "LD_DEBUG_OUTPUT", "LD_DYNAMIC_WEAK", "LD_HWCAP_MASK", "LD_LIBRARY_PATH",
    "LD_ORIGIN_PATH", "LD_PRELOAD", "LD_PROFILE", "LD_SHOW_AUXV", "LD_USE_LOAD_BIAS",
    "LOCALDOMAIN", "LOCPATH", "MALLOC_TRACE", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF",
    "RES_OPTIONS", "TMPDIR", "TZDIR",
)  # fmt: skip

#: bash(1), dash(1), zsh: variables a shell reads at start-up that run code, print variables
#: (xtrace) or choose the files it reads.
SHELLS = (
    "PATH", "HOME", "SHELL", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "BASH_XTRACEFD",
    "PS0", "PS1", "PS2", "PS3", "PS4", "PROMPT_COMMAND", "BASH_FUNC_*", "BASH_LOADABLES_PATH",
    "BASH_COMPAT", "EXECIGNORE", "GLOBIGNORE", "INPUTRC", "HISTFILE", "CDPATH", "IFS",
    "FPATH", "ZDOTDIR",
)  # fmt: skip

#: ruby(1), RubyGems and Bundler: every ``RUBY*`` (``RUBYOPT``, ``RUBYLIB``, ``RUBYGEMS_GEMDEPS``,
#: ``RUBY_GC_*``), ``GEM_*`` (``GEM_HOME``, ``GEM_PATH``) and ``BUNDLE_*``/``BUNDLER_*`` variable
#: (Bundler reads every setting, ``BUNDLE_GEMFILE`` included, from ``BUNDLE_<NAME>``).
RUBY = ("RUBY*", "GEM_*", "BUNDLE_*", "BUNDLER_*")

#: node(1) and npm: ``NODE_OPTIONS``, ``NODE_PATH``, ``NODE_TLS_REJECT_UNAUTHORIZED``,
#: ``NODE_EXTRA_CA_CERTS``, ...; npm reads any setting from ``npm_config_<name>``.
NODE = ("NODE_*", "NPM_CONFIG_*")

#: python(1): every ``PYTHON*`` variable (``PYTHONSTARTUP``, ``PYTHONWARNINGS``, ...).
PYTHON = ("PYTHON*",)

#: perlrun(1): every ``PERL*`` variable (``PERL5OPT``, ``PERL5LIB``, ``PERL5DB``, ...).
PERL = ("PERL*",)

#: java(1): ``JAVA_TOOL_OPTIONS``, ``JDK_JAVA_OPTIONS``, ``_JAVA_OPTIONS`` (``-javaagent:``,
#: ``-XX:OnError=``), ``JAVA_OPTS`` of the usual start scripts, and the class path.
JAVA = ("JAVA_*", "JDK_*", "_JAVA_*", "CLASSPATH")

#: git(1) ENVIRONMENT VARIABLES and git-config(1): ``GIT_SSH_COMMAND``, ``GIT_CONFIG_*``
#: (any setting, ``core.sshCommand`` included), ``GIT_EXEC_PATH``, ``GIT_ASKPASS``, ``GIT_TRACE``;
#: and the other commands and files git (and many tools) take from the environment.
GIT = ("GIT_*", "SSH_ASKPASS", "EDITOR", "VISUAL", "PAGER", "XDG_CONFIG_HOME")

#: openssl(1) / OpenSSL's environment: ``OPENSSL_CONF`` loads engines and providers (code),
#: ``OPENSSL_MODULES``, ``OPENSSL_ENGINES``; ``SSL_CERT_FILE``/``SSL_CERT_DIR`` choose the trust
#: anchors of every TLS connection.
OPENSSL = ("OPENSSL_*", "SSL_CERT_FILE", "SSL_CERT_DIR")

#: Proxies that curl, git, Ruby's Net::HTTP and Python read: every request through the writer's
#: host.
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY")

#: The agent's own configuration, and the AWS SDKs' and ECS's.
AGENT = ("AWS_*", "ECS_*", "SECRETS_AGENT_*", "PARAMETER_STORE_PREFIX", "SECRETS_MANAGER_PREFIX")

SOURCES: dict[str, tuple[str, ...]] = {
    "sudo": SUDO_BADENV,
    "glibc": GLIBC_UNSECURE,
    "shells": SHELLS,
    "ruby": RUBY,
    "node": NODE,
    "python": PYTHON,
    "perl": PERL,
    "java": JAVA,
    "git": GIT,
    "openssl": OPENSSL,
    "proxies": PROXIES,
    "secrets_agent": AGENT,
}

PROTECTED: tuple[str, ...] = tuple(sorted({name for names in SOURCES.values() for name in names}))


def compile_patterns(patterns: Iterable[str], *, ignore_case: bool = False) -> re.Pattern[str]:
    """One regular expression that fully matches any of ``patterns`` (``*``: any run)."""
    alternatives = ["(?:" + ".*".join(map(re.escape, p.split("*"))) + ")" for p in patterns]
    if not alternatives:
        return re.compile(r"(?!)")  # matches nothing
    flags = re.ASCII | (re.IGNORECASE if ignore_case else 0)
    return re.compile("|".join(alternatives), flags)


_PROTECTED = compile_patterns(PROTECTED, ignore_case=True)


def is_protected(name: str) -> bool:
    """Is ``name`` one the agent never sets?"""
    return _PROTECTED.fullmatch(name) is not None
