"""Name rule, prefix boundaries, protected names and collisions (agent.naming)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agent.errors import DataError
from agent.model import Item, Secret
from agent.naming import (
    check_allowed,
    check_settable,
    is_protected,
    key_under_name_prefix,
    key_under_path,
    key_under_secret_prefix,
    normalize_path,
    records_from_items,
    variable_name,
)

POSIX = re.compile(r"[A-Z_][A-Z0-9_]*\Z")


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("secret_key_base", "SECRET_KEY_BASE"),
        ("database/url", "DATABASE_URL"),
        ("secret.key.base", "SECRET_KEY_BASE"),
        ("foo-bar", "FOO_BAR"),
        ("FOO.BAR", "FOO_BAR"),
        ("a--..//b", "A_B"),
        ("_leading_and_trailing_", "LEADING_AND_TRAILING"),
        ("/deep/nested/path/", "DEEP_NESTED_PATH"),
        ("a__b", "A_B"),
        ("mixedCase9", "MIXEDCASE9"),
        ("héllo", "H_LLO"),
        ("x", "X"),
        ("a1", "A1"),
    ],
)
def test_name_rule(key: str, name: str) -> None:
    assert variable_name(key) == name


@pytest.mark.parametrize("key", ["", "_", "/", "...", "-/._", "é", "✓✓"])
def test_empty_name_is_a_data_error(key: str) -> None:
    with pytest.raises(DataError) as info:
        variable_name(key)
    assert info.value.exit_code == 65
    assert "empty" in info.value.message


@pytest.mark.parametrize("key", ["1password", "9", "/2fa/secret", "_3x"])
def test_digit_leading_name_is_a_data_error(key: str) -> None:
    with pytest.raises(DataError) as info:
        variable_name(key)
    assert "digit" in info.value.message


@given(st.text())
@example("\x00")
@example("ǅ")  # titlecase letter: upper() must not be applied before the ASCII filter
@example("ß")
@example("ﬁ")
@example("K")  # Kelvin sign
def test_variable_name_is_posix_or_data_error(key: str) -> None:
    try:
        name = variable_name(key)
    except DataError:
        return
    assert POSIX.match(name), name


# --- protected names ----------------------------------------------------------------------

PROTECTED = [
    "PATH",
    "HOME",
    "SHELL",
    "IFS",
    "ENV",
    "BASH_ENV",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_",
    "DYLD_INSERT_LIBRARIES",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHON",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "PERL5OPT",
    "JAVA_TOOL_OPTIONS",
    "AWS_ACCESS_KEY_ID",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "ECS_CONTAINER_METADATA_URI_V4",
    "PARAMETER_STORE_PREFIX",
    "SECRETS_MANAGER_PREFIX",
    "SECRETS_AGENT_OVERRIDE",
    "SECRETS_AGENT_KMS_KEY_ARNS",
    # sudo's env_delete table, glibc's UNSECURE_ENVVARS and the interpreters (agent.protected)
    "SHELLOPTS",
    "PS4",
    "BASH_FUNC_X%%",
    "BASH_FUNC_",
    "GLIBC_TUNABLES",
    "TMPDIR",
    "GIT_CONFIG_KEY_0",
    "BUNDLE_GEMFILE",
    "RUBY_YJIT_ENABLE",
    "NPM_CONFIG_SCRIPT_SHELL",
    "_JAVA_OPTIONS",
    "OPENSSL_CONF",
    # compared without case: curl and git read http_proxy, zsh ties path to PATH
    "http_proxy",
    "path",
    "Ld_Preload",
]
NOT_PROTECTED = [
    "PATHS",
    "MY_PATH",
    "HOMEPAGE",
    "ENVIRONMENT",
    "LDAP_URL",
    "AWS",
    "AWSX",
    "SECRETS_AGENT",
    "SECRETS_MANAGER_PREFIX_2",
    "RAILS_ENV",
    "DATABASE_URL",
    "SECRET_KEY_BASE",
    "REDIS_URL",
    "RAILS_MASTER_KEY",
    "SMTP_PASSWORD",
    "GITHUB_TOKEN",
    "NODEJS_URL",
    "TERM_URL",
    "HTTP_PROXY_URL",
    "PS",
    "PS40",
]


@pytest.mark.parametrize("name", PROTECTED)
def test_protected_names(name: str) -> None:
    assert is_protected(name)
    with pytest.raises(DataError) as info:
        check_settable(name, origin="ssm '/app/x'")
    assert name in info.value.message
    assert "'/app/x'" in info.value.message


@pytest.mark.parametrize("name", NOT_PROTECTED)
def test_unprotected_names(name: str) -> None:
    assert not is_protected(name)
    check_settable(name, origin="test")


def test_every_source_table_is_protected() -> None:
    from agent import protected

    for names in protected.SOURCES.values():
        for name in names:
            assert is_protected(name.replace("*", "X")), name
            assert is_protected(name.replace("*", "")), name


ALLOW = ("DATABASE_URL", "RAILS_*", "*_KEY")


@pytest.mark.parametrize("name", ["DATABASE_URL", "RAILS_ENV", "RAILS_", "API_KEY", "_KEY"])
def test_allowlist_permits_names_and_patterns(name: str) -> None:
    check_allowed([(name, "ssm '/a/x'")], ALLOW)
    check_allowed([(name, "ssm '/a/x'")], None)


def test_allowlist_names_every_variable_outside_it_and_is_case_sensitive() -> None:
    named = [("DATABASE_URL", "ssm '/a/d'"), ("database_url", "a reference"),
             ("REDIS_URL", "ssm '/a/r'"), ("KEYS", "ssm '/a/k'")]
    with pytest.raises(DataError) as info:
        check_allowed(named, ALLOW)
    message = info.value.message
    assert "SECRETS_AGENT_ALLOW" in message
    for shown in ("database_url (a reference)", "REDIS_URL (ssm '/a/r')", "KEYS (ssm '/a/k')"):
        assert shown in message
    assert "DATABASE_URL (" not in message


def test_records_from_items_applies_the_allowlist_after_the_protected_check() -> None:
    items = [item("/a/shellopts", "shellopts"), item("/a/redis_url", "redis_url")]
    with pytest.raises(DataError, match="protected variable SHELLOPTS"):
        records_from_items(items, allow=("*",))
    with pytest.raises(DataError, match="REDIS_URL"):
        records_from_items([item("/a/redis_url", "redis_url")], allow=("DATABASE_URL",))


@pytest.mark.parametrize("name", ["", "1A", "A-B", "A B", "A.B", "É"])
def test_check_settable_rejects_invalid_names(name: str) -> None:
    with pytest.raises(DataError):
        check_settable(name, origin="test")


# --- prefix boundaries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name", "key"),
    [
        ("/kptboard/prod", "/kptboard/prod/secret_key_base", "secret_key_base"),
        ("/kptboard/prod", "/kptboard/prod/database/url", "database/url"),
        ("/kptboard/prod/", "/kptboard/prod/x", "x"),
        ("/kptboard/prod", "/kptboard/production/x", None),
        ("/kptboard/prod/", "/kptboard/production/x", None),
        ("/kptboard/prod", "/kptboard/prod", None),
        ("/kptboard/prod", "/other/prod/x", None),
        ("/kptboard/prod", "kptboard/prod/x", None),
        ("/", "/x/y", "x/y"),
    ],
)
def test_key_under_path(path: str, name: str, key: str | None) -> None:
    assert key_under_path(path, name) == key
    assert key_under_path(normalize_path(path), name) == key


@pytest.mark.parametrize(
    ("path", "normal"), [("/a/b", "/a/b"), ("/a/b/", "/a/b"), ("/a/b//", "/a/b"), ("/", "/")]
)
def test_normalize_path(path: str, normal: str) -> None:
    assert normalize_path(path) == normal


@pytest.mark.parametrize(
    ("prefix", "name", "key"),
    [
        ("kptboard-rails", "kptboard-rails.secret.key.base", "secret.key.base"),
        ("kptboard-rails", "kptboard-rails/x", "x"),
        ("kptboard-rails", "kptboard-railsx.foo", None),
        ("kptboard-rails", "kptboard-rails-staging.foo", None),
        ("kptboard-rails", "kptboard-rails_x", None),
        ("kptboard-rails", "kptboard-rails", None),
        ("kptboard-rails", "other.kptboard-rails.x", None),
        ("kptboard-rails.", "kptboard-rails.x", "x"),
        ("kptboard-rails/", "kptboard-rails/x", "x"),
        ("kptboard-rails-", "kptboard-rails-staging.foo", "staging.foo"),
        ("kptboard-rails_", "kptboard-rails_x", "x"),
        ("kptboard-rails.", "kptboard-railsx", None),
    ],
)
def test_key_under_name_prefix(prefix: str, name: str, key: str | None) -> None:
    assert key_under_name_prefix(prefix, name) == key


@pytest.mark.parametrize(
    ("prefix", "name", "key"),
    [
        ("kptboard/prod", "kptboard/prod/database", "database"),
        ("kptboard/prod", "kptboard/prod/a/b", "a/b"),
        ("kptboard/prod/", "kptboard/prod/database", "database"),
        ("kptboard/prod", "kptboard/production/database", None),
        ("kptboard/prod", "kptboard/prod", None),
        ("kptboard/prod", "kptboard/prodx", None),
        ("kptboard-", "kptboard-db", "db"),
        ("kptboard/prod", "other/kptboard/prod/x", None),
    ],
)
def test_key_under_secret_prefix(prefix: str, name: str, key: str | None) -> None:
    assert key_under_secret_prefix(prefix, name) == key


@given(st.text(min_size=1), st.text())
def test_boundary_functions_never_match_without_a_separator(prefix: str, rest: str) -> None:
    """Whatever matches is the prefix plus a separator (or a prefix ending in one)."""
    for fn in (key_under_name_prefix, key_under_secret_prefix):
        key = fn(prefix, prefix + rest)
        if key is not None:
            assert prefix.endswith((".", "/", "-", "_")) or rest[:1] in (".", "/")
            assert (prefix + rest).endswith(key)


# --- records_from_items -------------------------------------------------------------------


def item(source_name: str, key: str, value: str = "v") -> Item:
    return Item(source="ssm", source_name=source_name, value=Secret(value), version="1", key=key)


def test_records_from_items_names_every_item() -> None:
    records = records_from_items(
        [item("/app/database/url", "database/url"), item("/app/secret_key_base", "secret_key_base")]
    )
    assert sorted((r.name, r.source_name, r.version) for r in records) == [
        ("DATABASE_URL", "/app/database/url", "1"),
        ("SECRET_KEY_BASE", "/app/secret_key_base", "1"),
    ]


def test_collision_names_every_parameter_and_no_value() -> None:
    items = [
        item("/app/db_url", "db_url", "value-one"),
        item("/app/db.url", "db.url", "value-two"),
        item("/app/db/url", "db/url", "value-three"),
    ]
    with pytest.raises(DataError) as info:
        records_from_items(items)
    line = info.value.line()
    assert info.value.exit_code == 65
    for name in ("/app/db_url", "/app/db.url", "/app/db/url", "DB_URL"):
        assert name in line
    assert "value-" not in line


def test_collision_is_detected_whatever_the_order() -> None:
    a, b = item("/app/foo-bar", "foo-bar"), item("/app/FOO.BAR", "FOO.BAR")
    for items in ([a, b], [b, a]):
        with pytest.raises(DataError, match="FOO_BAR"):
            records_from_items(items)


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("", "empty"),
        ("/", "empty"),
        ("1password", "digit"),
        ("path", "PATH"),
        ("ld/preload", "LD_PRELOAD"),
        ("aws.secret.access.key", "AWS_SECRET_ACCESS_KEY"),
        ("secrets-agent-override", "SECRETS_AGENT_OVERRIDE"),
    ],
)
def test_bad_prefix_item_is_a_data_error_naming_the_parameter(key: str, fragment: str) -> None:
    with pytest.raises(DataError) as info:
        records_from_items([item(f"/app/{key}", key, "s3cr3t-value")])
    assert fragment in info.value.message
    assert f"/app/{key}" in info.value.message
    assert "s3cr3t-value" not in info.value.line()


def test_reference_items_are_refused() -> None:
    ref = Item(source="ssm", source_name="/x", value=Secret("v"), version="1", key=None)
    with pytest.raises(ValueError):
        records_from_items([ref])


KEYS = st.text(alphabet=st.sampled_from("abAB01_.-/é"), max_size=8)


@given(st.lists(KEYS, max_size=8))
def test_records_from_items_gives_unique_settable_names_or_data_error(keys: list[str]) -> None:
    items = [item(f"/app/{k}", k, f"value-{i}") for i, k in enumerate(keys)]
    try:
        records = records_from_items(items)
    except DataError as exc:
        assert "value-" not in exc.line()
        return
    names = [r.name for r in records]
    assert len(names) == len(set(names)) == len(items)
    for record in records:
        assert POSIX.match(record.name)
        assert not is_protected(record.name)
        assert record.name == variable_name(
            next(i.key for i in items if i.source_name == record.source_name) or ""
        )
