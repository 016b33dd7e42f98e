"""The IAM policy the agent renders: exact statements, static checks, templates, Terraform, and
every AWS operation of real agent runs (against moto) allowed by the policy rendered for them."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from secrets_agent.core.errors import ConfigError
from secrets_agent.core.naming import key_under_name_prefix
from secrets_agent.core.naming import key_under_secret_prefix as remainder
from secrets_agent.policy import needs as iam
from tests.conftest import REGION, ROOT, base_env, run_agent
from tests.support.iam_support import (
    ACCOUNT,
    Check,
    allows,
    as_list,
    aws_calls,
    checks_for,
    parliament_findings,
    static_problems,
)

KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CMK = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0987dcba-09fe-87dc-65ba-ab0987654321"
HOME = iam.Where("aws", REGION, ACCOUNT)


def render(env: Mapping[str, str], **kw: Any) -> dict[str, Any]:
    full = {"AWS_REGION": REGION, **env}
    text = iam.render_for_environment(full, fmt="json", account_id=ACCOUNT, **kw)
    doc: dict[str, Any] = json.loads(text)
    return doc


def by_sid(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in doc["Statement"]}


def arn(service: str, rest: str, region: str = REGION) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{rest}"


# ----------------------------------------------------------------------------- exact statements


def test_path_mode_grants_get_parameters_by_path_on_the_path_only() -> None:
    doc = render({"PARAMETER_STORE_PREFIX": "/kptboard/prod/"})
    assert doc["Statement"] == [
        {
            "Sid": "ReadParametersUnderPath",
            "Effect": "Allow",
            "Action": ["ssm:GetParametersByPath"],
            "Resource": [
                arn("ssm", "parameter/kptboard/prod"),
                arn("ssm", "parameter/kptboard/prod/*"),
            ],
        }
    ]


def test_name_prefix_mode_needs_describe_parameters_on_star_and_bounded_get_parameters() -> None:
    sids = by_sid(render({"PARAMETER_STORE_PREFIX": "kptboard-rails"}))
    assert sids["ListParameterNames"]["Action"] == ["ssm:DescribeParameters"]
    assert sids["ListParameterNames"]["Resource"] == ["*"]
    assert sids["ReadParametersByNamePrefix"]["Action"] == ["ssm:GetParameters"]
    assert sids["ReadParametersByNamePrefix"]["Resource"] == [
        arn("ssm", "parameter/kptboard-rails.*"),
        arn("ssm", "parameter/kptboard-rails/*"),
    ]
    assert set(sids) == {"ListParameterNames", "ReadParametersByNamePrefix"}
    ending = by_sid(render({"PARAMETER_STORE_PREFIX": "kptboard-rails-"}))
    assert ending["ReadParametersByNamePrefix"]["Resource"] == [
        arn("ssm", "parameter/kptboard-rails-*")
    ]


def test_references_grant_each_parameter_and_secret_without_selectors() -> None:
    doc = render(
        {
            "A": "ssm:/shared/db_url:3",
            "B": "ssm:flat.name:live",
            "C": f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/other/region",
            "D": "secretsmanager:kptboard/other:password",
            "E": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:kptboard/pinned-AbCdEf:k",
        }
    )
    sids = by_sid(doc)
    assert sids["ReadReferencedParameters"]["Resource"] == sorted(
        [
            arn("ssm", "parameter/shared/db_url"),
            arn("ssm", "parameter/flat.name"),
            arn("ssm", "parameter/other/region", "eu-west-1"),
        ]
    )
    assert sids["ReadReferencedSecrets"]["Action"] == ["secretsmanager:GetSecretValue"]
    assert sids["ReadReferencedSecrets"]["Resource"] == sorted(
        [
            arn("secretsmanager", "secret:kptboard/other-??????"),
            arn("secretsmanager", "secret:kptboard/pinned-AbCdEf"),
        ]
    )
    assert set(sids) == {"ReadReferencedParameters", "ReadReferencedSecrets"}


def test_secrets_manager_prefix_grants_batch_and_list_on_star_and_reads_below_it() -> None:
    sids = by_sid(render({"SECRETS_MANAGER_PREFIX": "kptboard/prod"}))
    assert sids["ListSecretsUnderPrefix"]["Action"] == [
        "secretsmanager:BatchGetSecretValue",
        "secretsmanager:ListSecrets",
    ]
    assert sids["ListSecretsUnderPrefix"]["Resource"] == ["*"]
    assert sids["ReadSecretsUnderPrefix"]["Resource"] == [
        arn("secretsmanager", "secret:kptboard/prod/*")
    ]


def test_customer_managed_keys_are_conditioned_on_the_service_and_the_encryption_context() -> None:
    sids = by_sid(
        render(
            {"PARAMETER_STORE_PREFIX": "/kptboard/prod", "SECRETS_MANAGER_PREFIX": "kptboard/prod"},
            kms_key_arns=[CMK],
        )
    )
    assert sids["DecryptSecureStrings"]["Resource"] == [CMK]
    assert sids["DecryptSecureStrings"]["Condition"] == {
        "StringEquals": {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"},
        "StringLike": {
            "kms:EncryptionContext:PARAMETER_ARN": arn("ssm", "parameter/kptboard/prod/*")
        },
    }
    assert sids["DecryptSecrets"]["Condition"] == {
        "StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"},
        "StringLike": {
            "kms:EncryptionContext:SecretARN": arn("secretsmanager", "secret:kptboard/prod/*")
        },
    }
    # Without --kms-key-arn: the AWS managed keys need no statement at all.
    plain = render({"PARAMETER_STORE_PREFIX": "/kptboard/prod"})
    assert not any(a.startswith("kms:") for s in plain["Statement"] for a in s["Action"])


def test_aesdk_keys_bind_the_variable_names_when_they_are_all_known() -> None:
    sids = by_sid(render({"TOKEN": "aesdk:QUJD", "SECRETS_AGENT_KMS_KEY_ARNS": KEY}))
    assert sids == {
        "DecryptAesdkValues": {
            "Sid": "DecryptAesdkValues",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [KEY],
            "Condition": {
                "StringEquals": {"kms:EncryptionContext:secrets-agent:name": "TOKEN"},
                "ForAllValues:StringEquals": {
                    "kms:EncryptionContextKeys": ["aws-crypto-public-key", "secrets-agent:name"]
                },
            },
        }
    }
    # A prefix may hold aesdk: values under any name: the name must then merely be present.
    loaded = by_sid(
        render({"PARAMETER_STORE_PREFIX": "/kptboard/prod", "SECRETS_AGENT_KMS_KEY_ARNS": KEY})
    )
    assert loaded["DecryptAesdkValues"]["Condition"]["Null"] == {
        "kms:EncryptionContext:secrets-agent:name": "false"
    }
    # A referenced parameter or secret may hold an aesdk: value bound to its variable.
    refs = by_sid(
        render({"A": "ssm:/x/y", "B": "secretsmanager:b", "SECRETS_AGENT_KMS_KEY_ARNS": KEY})
    )
    assert refs["DecryptAesdkValues"]["Condition"]["StringEquals"] == {
        "kms:EncryptionContext:secrets-agent:name": ["A", "B"]
    }
    # Without keys, an aesdk: value is a configuration error for the agent: nothing to grant.
    assert "DecryptAesdkValues" not in by_sid(render({"A": "ssm:/x/y"}))


@pytest.mark.parametrize(
    ("env", "kw", "needle"),
    [
        ({"PARAMETER_STORE_PREFIX": "/a"}, {"account_id": None}, "--account-id"),
        ({}, {}, "nothing to grant"),
        ({"TOKEN": "aesdk:QUJD"}, {}, "SECRETS_AGENT_KMS_KEY_ARNS"),
        (
            {"PARAMETER_STORE_PREFIX": "/a"},
            {"kms_key_arns": [f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/ssm"]},
            "need no statement",
        ),
        (
            {"PARAMETER_STORE_PREFIX": "/a"},
            {"kms_key_arns": [f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/app"]},
            "alias",
        ),
        (
            {"PARAMETER_STORE_PREFIX": "/a"},
            {"kms_key_arns": [f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/k"]},
            "eu-west-1",
        ),
        ({"PARAMETER_STORE_PREFIX": "/a"}, {"account_id": "12345"}, "12-digit"),
        ({"PARAMETER_STORE_PREFIX": "/kptboard/*"}, {}, "wildcard"),
        ({"SECRETS_MANAGER_PREFIX": "kptboard/pro?"}, {}, "SECRETS_MANAGER_PREFIX"),
        (
            {"PARAMETER_STORE_PREFIX": "/a"},
            {"kms_key_arns": [f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"]},
            "not a KMS key ARN",
        ),
        ({"PARAMETER_STORE_PREFIX": "/a", "AWS_REGION": ""}, {}, "AWS_REGION"),
    ],
)
def test_configurations_that_cannot_be_rendered_are_config_errors(
    env: dict[str, str], kw: dict[str, Any], needle: str
) -> None:
    full = {"AWS_REGION": REGION, **env}
    kw = {"account_id": ACCOUNT, **kw}
    with pytest.raises(ConfigError) as err:
        iam.render_for_environment(full, fmt="json", **kw)
    assert needle in err.value.line()
    assert err.value.exit_code == 78


# ----------------------------------------------------------------------------- static checks

CONFIGS: dict[str, tuple[dict[str, str], list[str]]] = {
    "path": ({"PARAMETER_STORE_PREFIX": "/kptboard/prod"}, []),
    "path-cmk": ({"PARAMETER_STORE_PREFIX": "/kptboard/prod/"}, [CMK]),
    "name-prefix": ({"PARAMETER_STORE_PREFIX": "kptboard-rails"}, []),
    "name-prefix-cmk": ({"PARAMETER_STORE_PREFIX": "kptboard-rails."}, [CMK]),
    "ssm-refs": ({"A": "ssm:/shared/a:2", "B": "ssm:flat.b:label"}, []),
    "sm-prefix": ({"SECRETS_MANAGER_PREFIX": "kptboard/prod"}, []),
    "sm-prefix-cmk": ({"SECRETS_MANAGER_PREFIX": "kptboard/prod"}, [CMK]),
    "sm-refs": (
        {
            "D": "secretsmanager:kptboard/db:password",
            "E": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:x/y-AbCdEf",
        },
        [CMK],
    ),
    "aesdk": ({"T": "aesdk:QUJD", "SECRETS_AGENT_KMS_KEY_ARNS": KEY}, []),
    "everything": (
        {
            "PARAMETER_STORE_PREFIX": "/kptboard/prod",
            "SECRETS_MANAGER_PREFIX": "kptboard/prod",
            "A": "ssm:/shared/a",
            "D": "secretsmanager:kptboard/db",
            "T": "aesdk:QUJD",
            "SECRETS_AGENT_KMS_KEY_ARNS": KEY,
        },
        [CMK],
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_rendered_policy_passes_parliament_and_our_own_checks(name: str) -> None:
    env, keys = CONFIGS[name]
    text = iam.render_for_environment(
        {"AWS_REGION": REGION, **env}, fmt="json", account_id=ACCOUNT, kms_key_arns=keys
    )
    assert parliament_findings(text) == []
    assert static_problems(json.loads(text), regions=[REGION]) == []


def test_a_reference_in_another_region_adds_exactly_that_region() -> None:
    doc = render({"A": f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/x/y", "B": "ssm:/x/z"})
    assert static_problems(doc, regions=[REGION, "eu-west-1"]) == []
    assert static_problems(doc, regions=[REGION]) != []


def test_china_regions_get_their_partition() -> None:
    doc = json.loads(
        iam.render_for_environment(
            {"AWS_REGION": "cn-north-1", "PARAMETER_STORE_PREFIX": "/app"},
            fmt="json",
            account_id=ACCOUNT,
        )
    )
    expected = f"arn:aws-cn:ssm:cn-north-1:{ACCOUNT}:parameter/app"
    assert doc["Statement"][0]["Resource"][0] == expected


def test_our_checks_catch_the_seed_blog_policy_that_parliament_lets_through() -> None:
    blog = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["ssm:GetParameters"],
                "Resource": [arn("ssm", "parameter/kptboard-*.*", "ap-northeast-1")],
            },
            {
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/alias/aws/ssm",
            },
        ],
    }
    problems = static_problems(blog, regions=["ap-northeast-1"])
    assert any("alias" in p or "not a key ARN" in p for p in problems)
    assert any("region us-east-1" in p for p in problems)
    assert any("without a condition" in p for p in problems)
    # ... and its prefix pattern reaches past the boundary:
    target = arn("ssm", "parameter/kptboard-railsx.secret", "ap-northeast-1")
    assert allows(blog, Check("ssm:GetParameters", target))


def test_our_checks_catch_a_star_only_action_scoped_and_a_scoped_action_on_star() -> None:
    bad = {
        "Statement": [
            {"Sid": "A", "Effect": "Allow", "Action": "ssm:DescribeParameters",
             "Resource": arn("ssm", "parameter/x")},
            {"Sid": "B", "Effect": "Allow", "Action": "ssm:GetParameters", "Resource": "*"},
        ]
    }
    problems = static_problems(bad, regions=[REGION])
    assert any(p.startswith("A:") for p in problems)
    assert any(p.startswith("B:") for p in problems)


_SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=8)
_NAME_CHARS = st.text(alphabet="abcdprodution0123456789_.-/", min_size=0, max_size=12)


@settings(max_examples=300, deadline=None)
@given(segments=st.lists(_SEGMENT, min_size=1, max_size=3), tail=_NAME_CHARS)
def test_path_grant_never_reaches_a_sibling_path(segments: list[str], tail: str) -> None:
    path = "/" + "/".join(segments)
    name = path + tail
    assume(not name.endswith("/") and "//" not in name)  # SSM names never do
    needs = iam.Needs(home=HOME, ssm_path=path, service_keys=(CMK,))
    doc = iam.policy_document(needs)
    wanted = name == path or name.startswith(path + "/")
    target = iam.parameter_arn(HOME, name)
    assert allows(doc, Check("ssm:GetParametersByPath", target)) == wanted
    # The SecureString key statement is bounded the same way (descendants only).
    context = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com",
               "kms:EncryptionContext:PARAMETER_ARN": target}
    below = name.startswith(path + "/")
    assert allows(doc, Check("kms:Decrypt", CMK, context)) == below


def test_kptboard_prod_never_yields_a_pattern_matching_kptboard_production() -> None:
    for env in (
        {"PARAMETER_STORE_PREFIX": "/kptboard/prod", "SECRETS_MANAGER_PREFIX": "kptboard/prod"},
        {"PARAMETER_STORE_PREFIX": "/kptboard/prod/"},
        {"PARAMETER_STORE_PREFIX": "kptboard/prod"},
    ):
        doc = render(env, kms_key_arns=[CMK])
        for statement in doc["Statement"]:
            # "*" only ever holds the actions that accept nothing else (checked above).
            patterns = [r for r in as_list(statement["Resource"]) if r != "*"]
            for block in (statement.get("Condition") or {}).values():
                patterns += [str(v) for k, vs in block.items() if "ARN" in k for v in as_list(vs)]
            for pattern in patterns:
                for bad in ("parameter/kptboard/production", "parameter/kptboard/production/x",
                            "secret:kptboard/production/x-AbCdEf", "secret:kptboard/prod-AbCdEf"):
                    target = arn("secretsmanager" if "secret:" in bad else "ssm", bad)
                    assert not iam_glob(pattern, target), (pattern, bad)


def iam_glob(pattern: str, value: str) -> bool:
    from tests.support.iam_support import matches

    return matches(pattern, value)


@settings(max_examples=300, deadline=None)
@given(prefix=_SEGMENT, name=st.text(alphabet="abkptr.-_/", min_size=1, max_size=12))
def test_name_prefix_grant_matches_the_agents_own_boundary_rule(prefix: str, name: str) -> None:
    needs = iam.Needs(home=HOME, ssm_name_prefix=prefix)
    doc = iam.policy_document(needs)
    candidate = prefix + name
    target = iam.parameter_arn(HOME, candidate)
    wanted = key_under_name_prefix(prefix, candidate) is not None
    assert allows(doc, Check("ssm:GetParameters", target)) == wanted


@settings(max_examples=300, deadline=None)
@given(
    segments=st.lists(st.text(alphabet="abcprod0123_+=.@-", min_size=1, max_size=6),
                      min_size=1, max_size=3),
    tail=st.text(alphabet="abprod/-_.", min_size=0, max_size=10),
    suffix=st.text(alphabet="AbCdEf0123", min_size=6, max_size=6),
)
def test_secret_grants_match_the_agents_boundary_and_the_arn_suffix(
    segments: list[str], tail: str, suffix: str
) -> None:
    prefix = "/".join(segments)
    name = prefix + tail
    target = HOME.arn("secretsmanager", f"secret:{name}-{suffix}")
    by_prefix = iam.policy_document(iam.Needs(home=HOME, secrets_prefix=prefix))
    wanted = remainder(prefix, name) is not None
    assert allows(by_prefix, Check("secretsmanager:GetSecretValue", target)) == wanted
    by_name = iam.policy_document(iam.Needs(home=HOME, secrets=((HOME, prefix),)))
    assert allows(by_name, Check("secretsmanager:GetSecretValue", target)) == (name == prefix)


# ----------------------------------------------------------------------------- Terraform

TERRAFORM = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")


def terraform_eval(directory: Path, expression: str) -> Any:
    """Evaluate an HCL expression offline with ``terraform console`` (no provider needed)."""
    proc = subprocess.run(
        [str(TERRAFORM), "console"],
        input=f"jsonencode({expression})\n",
        capture_output=True,
        text=True,
        cwd=directory,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(json.loads(proc.stdout.strip()))


def normalized(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Statements with every list sorted and one-item lists as scalars, for comparison."""

    def norm(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            items = sorted(norm(v) for v in value)
            return items[0] if len(items) == 1 else items
        return value

    return sorted((norm(s) for s in doc["Statement"]), key=lambda s: s["Sid"])


TEMPLATE_CASES: list[tuple[str, str, Callable[[], iam.Needs], str | None]] = [
    ("ssm-path", '{path = "/kptboard/prod/"}',
     lambda: iam.Needs(home=HOME, ssm_path="/kptboard/prod/"), None),
    ("ssm-name-prefix", '{name_prefix = "kptboard-rails"}',
     lambda: iam.Needs(home=HOME, ssm_name_prefix="kptboard-rails"), None),
    ("ssm-name-prefix", '{name_prefix = "kptboard-rails-"}',
     lambda: iam.Needs(home=HOME, ssm_name_prefix="kptboard-rails-"), None),
    ("ssm-references", '{parameter_names = ["/shared/a", "flat.b"]}',
     lambda: iam.Needs(home=HOME, parameters=((HOME, "/shared/a"), (HOME, "flat.b"))), None),
    ("secretsmanager-prefix", '{secret_prefix = "kptboard/prod"}',
     lambda: iam.Needs(home=HOME, secrets_prefix="kptboard/prod"), None),
    ("secretsmanager-references", '{secret_names = ["kptboard/db", "x"]}',
     lambda: iam.Needs(home=HOME, secrets=((HOME, "kptboard/db"), (HOME, "x"))), None),
    ("kms-ssm-cmk", f'{{key_arns = ["{CMK}"], parameter_name_patterns = ["/kptboard/prod/*"]}}',
     lambda: iam.Needs(home=HOME, ssm_path="/kptboard/prod", service_keys=(CMK,)),
     "DecryptSecureStrings"),
    ("kms-secretsmanager-cmk",
     f'{{key_arns = ["{CMK}"], secret_name_patterns = ["kptboard/prod/*"]}}',
     lambda: iam.Needs(home=HOME, secrets_prefix="kptboard/prod", service_keys=(CMK,)),
     "DecryptSecrets"),
    ("kms-aesdk", f'{{key_arns = ["{KEY}"], variable_names = ["TOKEN"]}}',
     lambda: iam.Needs(home=HOME, aesdk_keys=(KEY,), aesdk_names=("TOKEN",)), None),
    ("kms-aesdk", f'{{key_arns = ["{KEY}"], variable_names = []}}',
     lambda: iam.Needs(home=HOME, aesdk_keys=(KEY,), aesdk_names=None), None),
]


@needs_terraform
@pytest.mark.parametrize(("template", "variables", "needs", "sid"), TEMPLATE_CASES)
def test_each_template_renders_what_the_renderer_renders(
    tmp_path: Path, template: str, variables: str, needs: Callable[[], iam.Needs], sid: str | None
) -> None:
    common = f'partition = "aws", region = "{REGION}", account_id = "{ACCOUNT}"'
    variables = "{" + common + ", " + variables.strip("{}") + "}"
    path = ROOT / "iam" / f"{template}.json.tftpl"
    rendered = terraform_eval(tmp_path, f'jsondecode(templatefile("{path}", {variables}))')
    expected: dict[str, Any] = json.loads(json.dumps(iam.policy_document(needs())))
    if sid is not None:
        expected = {"Statement": [s for s in expected["Statement"] if s["Sid"] == sid]}
    assert normalized(rendered) == normalized(expected)
    assert rendered["Version"] == "2012-10-17"


def test_every_template_is_covered_and_readme_lists_it() -> None:
    on_disk = {p.name.removesuffix(".json.tftpl") for p in (ROOT / "iam").glob("*.json.tftpl")}
    assert on_disk == {case[0] for case in TEMPLATE_CASES}
    readme = (ROOT / "iam" / "README.md").read_text(encoding="utf-8")
    for name in on_disk:
        assert f"{name}.json.tftpl" in readme


@needs_terraform
@pytest.mark.parametrize("name", ["everything", "name-prefix-cmk", "sm-refs"])
def test_terraform_output_is_fmt_clean_and_evaluates_to_the_json_policy(
    tmp_path: Path, name: str
) -> None:
    env, keys = CONFIGS[name]
    full = {"AWS_REGION": REGION, **env}
    as_json = json.loads(
        iam.render_for_environment(full, fmt="json", account_id=ACCOUNT, kms_key_arns=keys)
    )
    for account in (ACCOUNT, None):
        hcl = iam.render_for_environment(full, fmt="terraform", account_id=account,
                                         kms_key_arns=keys)
        assert ("aws_caller_identity" in hcl) == (account is None)
        if account is None:
            # Stand in for the data source, which needs a provider, with a local of the same value.
            hcl = hcl.replace('data "aws_caller_identity" "secrets_agent" {}',
                              f'locals {{ acct = "{ACCOUNT}" }}')
            hcl = hcl.replace(iam.TF_ACCOUNT, "${local.acct}")
        (tmp_path / "main.tf").write_text(hcl, encoding="utf-8")
        fmt = subprocess.run([str(TERRAFORM), "fmt", "-check", "-diff", "main.tf"],
                             cwd=tmp_path, capture_output=True, text=True, check=False)
        assert fmt.returncode == 0, fmt.stdout
        got = terraform_eval(tmp_path, "jsondecode(local.secrets_agent_policy)")
        if account is None:  # the placeholder sorts apart from the digits: compare as sets
            assert normalized(got) == normalized(as_json)
        else:
            assert got == as_json


def test_terraform_output_escapes_template_sequences() -> None:
    from secrets_agent.policy.terraform import hcl_string

    assert hcl_string("a${b}%{c}") == '"a$${b}%%{c}"'


# ----------------------------------------------------------------------------- the CLI


def test_cli_prints_the_policy_and_exits_78_without_an_account(tmp_path: Path) -> None:
    env = base_env(None)
    env["PARAMETER_STORE_PREFIX"] = "/kptboard/prod"
    ok = run_agent(tmp_path, env, ["iam-policy", "--format", "json", "--account-id", ACCOUNT])
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == render({"PARAMETER_STORE_PREFIX": "/kptboard/prod"})
    tf = run_agent(tmp_path, env, ["iam-policy", "--format", "terraform"])
    assert tf.returncode == 0, tf.stderr
    assert "data.aws_caller_identity.secrets_agent.account_id" in tf.stdout
    bad = run_agent(tmp_path, env, ["iam-policy"])
    assert bad.returncode == 78
    assert "--account-id" in bad.stderr
    assert bad.stdout == ""
    key = run_agent(tmp_path, env, ["iam-policy", "--account-id", ACCOUNT,
                                    "--kms-key-arn", CMK, "--kms-key-arn", CMK])
    assert key.returncode == 0, key.stderr
    assert by_sid(json.loads(key.stdout))["DecryptSecureStrings"]["Resource"] == [CMK]


# ----------------------------------------------------------------------------- recorded calls


def _seed(boto_client: Callable[..., Any], moto_url: str, tmp_path: Path) -> dict[str, str]:
    """Parameters, secrets and a key for the runs below; returns values for the environment."""
    ssm = boto_client("ssm")
    for name, value in [
        ("/kptboard/prod/secret_key_base", "skb"),
        ("/kptboard/prod/database/url", "postgres://db"),
        ("/kptboard/production/leak", "no"),
        ("kptboard-rails.secret.key.base", "skb2"),
        ("kptboard-rails.db.url", "u"),
        ("kptboard-railsx.leak", "no"),
        ("/shared/token", "v1"),
    ]:
        ssm.put_parameter(Name=name, Value=value, Type="SecureString")
    ssm.put_parameter(Name="/shared/token", Value="v2", Type="SecureString", Overwrite=True)
    sm = boto_client("secretsmanager")
    sm.create_secret(Name="kptboard/prod/database",
                     SecretString=json.dumps({"username": "u", "password": "p"}))
    sm.create_secret(Name="kptboard/prod/api_key", SecretString="k")
    sm.create_secret(Name="kptboard/production/leak", SecretString="no")
    other = sm.create_secret(Name="kptboard/other", SecretString=json.dumps({"password": "pw"}))
    sm.create_secret(Name="kptboard/stage/live", SecretString="s")
    doomed = sm.create_secret(Name="kptboard/stage/doomed", SecretString="d")
    sm.delete_secret(SecretId=doomed["ARN"], RecoveryWindowInDays=7)
    key = boto_client("kms").create_key()["KeyMetadata"]["Arn"]
    env = base_env(moto_url)
    env["SECRETS_AGENT_KMS_KEY_ARNS"] = key
    values = {"key": key, "other_arn": other["ARN"]}
    for var in ("TOKEN", "PROD_TOKEN", "SEALED"):
        enc = run_agent(tmp_path, env, ["encrypt", "--key-id", key, "--name", var], stdin="t0k")
        assert enc.returncode == 0, enc.stderr
        values[var] = enc.stdout.strip()
    ssm.put_parameter(Name="/kptboard/prod/prod_token", Value=values["PROD_TOKEN"], Type="String")
    ssm.put_parameter(Name="/shared/sealed", Value=values["SEALED"], Type="String")
    return values


def _configs(v: Mapping[str, str]) -> dict[str, dict[str, str]]:
    keys = {"SECRETS_AGENT_KMS_KEY_ARNS": v["key"]}
    return {
        "path": {"PARAMETER_STORE_PREFIX": "/kptboard/prod/", **keys},
        "name-prefix": {"PARAMETER_STORE_PREFIX": "kptboard-rails"},
        "references": {
            "A": "ssm:/shared/token:1",
            "B": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/shared/token",
            "C": "secretsmanager:kptboard/other:password",
            "D": v["other_arn"],
            "TOKEN": v["TOKEN"],
            "SEALED": "ssm:/shared/sealed",
            **keys,
        },
        "sm-prefix": {"SECRETS_MANAGER_PREFIX": "kptboard/prod"},
        "sm-prefix-fallback": {"SECRETS_MANAGER_PREFIX": "kptboard/stage"},
        "everything": {
            "PARAMETER_STORE_PREFIX": "/kptboard/prod",
            "SECRETS_MANAGER_PREFIX": "kptboard/prod",
            "C": "secretsmanager:kptboard/other:password",
            "SEALED": "ssm:/shared/sealed",
            **keys,
        },
    }


def _secret_lookup(boto_client: Callable[..., Any]) -> Callable[[str], list[str]]:
    pages = boto_client("secretsmanager").get_paginator("list_secrets")
    listed = [s for p in pages.paginate(IncludePlannedDeletion=True) for s in p["SecretList"]]

    def lookup(value: str) -> list[str]:
        if value.endswith("*"):
            return [s["ARN"] for s in listed if s["Name"].startswith(value[:-1])]
        found = [s["ARN"] for s in listed if value in (s["Name"], s["ARN"])]
        assert found, f"the agent asked for a secret that does not exist: {value}"
        return found

    return lookup


def test_every_recorded_aws_operation_is_allowed_by_the_policy_rendered_for_its_run(
    moto: Any, boto_client: Callable[..., Any], tmp_path: Path
) -> None:
    values = _seed(boto_client, moto.url, tmp_path)
    lookup = _secret_lookup(boto_client)
    seen_operations: set[str] = set()
    for name, config in _configs(values).items():
        env = {**base_env(moto.url), **config,
               "SECRETS_AGENT_LOG_LEVEL": "debug", "SECRETS_AGENT_LOG_FORMAT": "json"}
        run = run_agent(tmp_path, env)
        assert run.returncode == 0 and run.ran, f"{name}: {run.stderr}"
        text = iam.render_for_environment(env, fmt="json", account_id=ACCOUNT)
        policy = json.loads(text)
        assert parliament_findings(text) == [], name
        assert static_problems(policy, regions=[REGION]) == [], name
        calls = aws_calls(run.stderr)
        assert calls, f"{name}: no aws call was logged"
        checks = [c for call in calls for c in checks_for(call, lookup)]
        denied = [c for c in checks if not allows(policy, c)]
        assert denied == [], f"{name}: the policy does not allow {denied}"
        # ... and no more: every action the policy grants was needed by this run.
        granted = {a for s in policy["Statement"] for a in as_list(s["Action"])}
        assert granted == {c.action for c in checks}, name
        seen_operations |= {f"{c['service']}:{c['operation']}" for c in calls}
    # The runs covered every kind of call the agent makes.
    assert seen_operations >= {
        "ssm:GetParametersByPath", "ssm:DescribeParameters", "ssm:GetParameters",
        "secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets",
        "secretsmanager:GetSecretValue", "kms:Decrypt",
    }, seen_operations


def test_the_evaluator_can_fail_a_run_whose_policy_is_too_narrow(
    moto: Any, boto_client: Callable[..., Any], tmp_path: Path
) -> None:
    boto_client("ssm").put_parameter(Name="/kptboard/prod/a", Value="x", Type="String")
    env = {**base_env(moto.url), "PARAMETER_STORE_PREFIX": "/kptboard/prod",
           "SECRETS_AGENT_LOG_LEVEL": "debug", "SECRETS_AGENT_LOG_FORMAT": "json"}
    run = run_agent(tmp_path, env)
    assert run.returncode == 0, run.stderr
    checks = [c for call in aws_calls(run.stderr) for c in checks_for(call, lambda _: [])]
    wrong = json.loads(iam.render_for_environment(
        {**env, "PARAMETER_STORE_PREFIX": "/kptboard/production"}, fmt="json", account_id=ACCOUNT))
    assert checks and not all(allows(wrong, c) for c in checks)


def test_terraform_output_warns_about_describe_parameters_in_name_prefix_mode_only() -> None:
    def tf(prefix: str) -> str:
        env = {"AWS_REGION": REGION, "PARAMETER_STORE_PREFIX": prefix}
        return iam.render_for_environment(env, fmt="terraform", account_id=ACCOUNT)

    assert "DescribeParameters accepts only" in tf("kptboard-rails")
    assert "DescribeParameters" not in tf("/kptboard/prod")
