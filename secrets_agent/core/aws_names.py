"""AWS's naming rules, one copy: what a parameter or secret name may hold and how long it may be,
regions and ARNs (one grammar for every ARN the agent reads), and the agent's prefix-boundary
rule, which the loads and the IAM policies share (what a policy grants and what a load reads
agree because both ask this module). Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping

# Characters of a name, as regex class bodies (AWS's documented sets).
SSM_NAME_CHARS = r"A-Za-z0-9_.\-/"
SM_NAME_CHARS = r"A-Za-z0-9/_+=.@\-"
# The same, as a reader is told them.
SSM_NAME_PUNCTUATION = "_.-/"
SM_NAME_PUNCTUATION = "/_+=.@-"
SSM_NAME_MAX = 2048  # characters of a whole parameter name
SSM_MAX_LEVELS = 15  # "/"-separated parts of a parameter name
SM_NAME_MAX = 512  # characters of a whole secret name

SSM_NAME = re.compile(rf"[{SSM_NAME_CHARS}]{{1,{SSM_NAME_MAX}}}\Z")
SSM_SELECTOR = re.compile(r"[A-Za-z0-9_.\-]{1,100}\Z")  # a version or label after ':'
SM_NAME = re.compile(rf"[{SM_NAME_CHARS}]{{1,{SM_NAME_MAX}}}\Z")

# ------------------------------------------------------------------ the ARN grammar, one home
_PARTITION = r"aws(?:-[a-z]+)*"  # aws, aws-cn, aws-us-gov, aws-iso-b ...
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"  # us-east-1, us-gov-west-1, cn-north-1 ...
REGION = re.compile(rf"{_REGION}\Z")
_ARN = (
    rf"arn:(?P<partition>{_PARTITION}):(?P<service>[a-z0-9-]+):(?P<region>{_REGION}):"
    r"(?P<account>\d{12}):(?P<resource>.+)\Z"
)
#: (partition, service, region, account, resource) of a regional ARN.
Arn = tuple[str, str, str, str, str]


def parse_arn(text: str, service: str | None = None) -> Arn | None:
    """The parts of ``text`` when it is a regional ARN (of ``service``, when given), as
    (partition, service, region, account, resource); else None. Compiled on first use: no
    start that reads no ARN pays for it."""
    match = re.match(_ARN, text)
    if match is None or (service is not None and match["service"] != service):
        return None
    return match["partition"], match["service"], match["region"], match["account"], match[
        "resource"
    ]


#: An ECS cluster, service or task definition family name (letters, digits, hyphens and
#: underscores, 1-255).
ECS_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}\Z")


def region_of(environ: Mapping[str, str]) -> str | None:
    """The region the environment names, as the AWS SDKs read it: ``AWS_REGION``, else
    ``AWS_DEFAULT_REGION`` (an empty one counts as unset); None when neither is set."""
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None

KMS_KEY_ARN = re.compile(
    rf"arn:(?P<partition>{_PARTITION}):kms:(?P<region>{_REGION}):"
    r"(?P<account>\d{12}):(?P<kind>key|alias)/(?P<id>.+)\Z"
)


def kms_region(key_id: str) -> str | None:
    """The region of a key or alias ARN (``arn:PARTITION:kms:REGION:...``); None otherwise
    (a key id or an alias name)."""
    arn = parse_arn(key_id, "kms")
    return arn[2] if arn else None


#: The KMS key ARNs SECRETS_AGENT_KMS_KEY_ARNS accepts: keys, never aliases.
KMS_KEY_ONLY_ARN = re.compile(rf"arn:{_PARTITION}:kms:{_REGION}:\d{{12}}:key/[A-Za-z0-9-]+\Z")

#: The six random characters AWS appends to every secret's ARN (``...:secret:NAME-a1B2c3``),
#: and the IAM wildcard that matches them.
SECRET_ARN_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}\Z")
SECRET_ARN_SUFFIX_WILDCARD = "-??????"  # noqa: S105 - an IAM pattern, not a password

# ---------------------------------------------------------------------- the boundary rule
#: A prefix that already ends in one of these is its own boundary.
SEPARATORS = (".", "/", "-", "_")
#: What may follow a flat SSM name prefix (``app-rails`` loads ``app-rails.x`` and
#: ``app-rails/x``), and a Secrets Manager prefix (``app/prod`` loads ``app/prod/x``).
SSM_NAME_PREFIX_SEPARATORS = (".", "/")
SM_PREFIX_SEPARATORS = ("/",)


def starts_under(prefix: str, separators: tuple[str, ...]) -> tuple[str, ...]:
    """How a name under ``prefix`` starts: the prefix itself when it ends in a separator, else
    the prefix and one of ``separators``. Never the bare prefix: ``app`` must not load
    ``application``."""
    if prefix.endswith(SEPARATORS):
        return (prefix,)
    return tuple(prefix + separator for separator in separators)


def key_under(prefix: str, name: str, separators: tuple[str, ...]) -> str | None:
    """What follows the boundary in ``name``, or None when ``name`` is not under ``prefix``."""
    for start in starts_under(prefix, separators):
        if name.startswith(start):
            return name[len(start) :]
    return None


def partition_of(region: str) -> str:
    """The ARN partition of a region (``cn-north-1`` -> ``aws-cn``)."""
    for start, partition in (
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-iso-", "aws-iso"),
    ):
        if region.startswith(start):
            return partition
    return "aws"
