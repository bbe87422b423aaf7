"""Tags others own: the tag keys Rolekeeper leaves alone on an entity (never set, never removed).

Organisations tag IAM entities by automation (cost allocation, tag policies), and a service
control policy may forbid removing those tags. An object lists such keys in `spec.ignoreTags`
and the operator adds its own (`rolekeeper run --ignore-tags`). A pattern is one tag key, or a
key prefix ending in `*` (`org:*`); keys are matched ignoring case, as IAM compares them.
AWS's own `aws:` keys are always left alone. Rolekeeper's `rolekeeper.dev/` ownership keys never
are: a pattern that could match one is refused, since ignoring them would make ownership
forgeable (and `ignores` answers False for them whatever the patterns say).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.core.actions import RESERVED_TAG_PREFIX

# IAM's class for tag keys and values, [\p{L}\p{Z}\p{N}_.:/=+\-@]: \w is letters, digits and _;
# \p{Z} is the Unicode space separators spelled out (\s would also let tabs and newlines through).
TAG_PATTERN = re.compile(r"[\w.:/=+\-@ \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*")
TAG_CHARACTERS = "letters, digits, spaces and _.:/=+-@"
AWS_PREFIX = "aws:"
MAX_KEY = 128  # IAM's longest tag key
MAX_PATTERNS = 50  # per object and per operator: as many as an entity can hold tags
WILDCARD = "*"


def pattern_problem(pattern: object) -> str | None:
    """Why `pattern` cannot name tags others own (None: it can)."""
    if not isinstance(pattern, str):
        return f"must be a string, got {type(pattern).__name__}"
    stem = pattern.removesuffix(WILDCARD)
    if not pattern:
        return "must not be empty"
    if len(stem) > MAX_KEY:
        return f"{len(stem)} characters is longer than a tag key ({MAX_KEY})"
    if WILDCARD in stem:
        return f"{pattern!r}: * is allowed only at the end (a key prefix, e.g. org:*)"
    if not TAG_PATTERN.fullmatch(stem):
        return f"{pattern!r}: tag keys may only contain {TAG_CHARACTERS}"
    lowered = stem.lower()
    if lowered.startswith(RESERVED_TAG_PREFIX) or (
        pattern.endswith(WILDCARD) and RESERVED_TAG_PREFIX.startswith(lowered)
    ):
        return (
            f"{pattern!r} would match Rolekeeper's ownership tags ({RESERVED_TAG_PREFIX}...), "
            "which are never left to others (that would make ownership forgeable)"
        )
    return None


def parse_patterns(values: Iterable[str]) -> tuple[str, ...]:
    """Patterns from command-line values, each a comma-separated list (tag keys hold no comma);
    ValueError naming every bad one."""
    found = [p.strip() for value in values for p in value.split(",") if p.strip()]
    problems = [problem for p in found if (problem := pattern_problem(p)) is not None]
    if len(found) > MAX_PATTERNS:
        problems.append(f"{len(found)} patterns, at most {MAX_PATTERNS}")
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(dict.fromkeys(found))


def matches(pattern: str, key: str) -> bool:
    """Whether tag key `key` is named by `pattern` (a key, or a prefix ending in *), ignoring
    case."""
    wanted, lowered = pattern.lower(), key.lower()
    if wanted.endswith(WILDCARD):
        return lowered.startswith(wanted[:-1])
    return lowered == wanted


@dataclass(frozen=True)
class ForeignTags:
    """The tag keys of an entity that belong to others, and the quota all tags share."""

    patterns: tuple[str, ...] = ()
    quota: int = 50
    """Tags an entity may hold, whoever set them (IAM: 50 per role, user or policy)."""

    def ignores(self, key: str) -> bool:
        """Whether Rolekeeper leaves tag `key` alone: AWS's own, or named by a pattern; never
        one of Rolekeeper's ownership keys."""
        lowered = key.lower()
        if lowered.startswith(RESERVED_TAG_PREFIX):
            return False
        if lowered.startswith(AWS_PREFIX):
            return True
        return any(matches(p, key) for p in self.patterns)

    def theirs(self, tags: Mapping[str, str]) -> dict[str, str]:
        """The tags of `tags` that others own."""
        return {k: v for k, v in tags.items() if self.ignores(k)}

    def ours(self, tags: Mapping[str, str]) -> dict[str, str]:
        """The tags of `tags` Rolekeeper compares with the spec (and may set or remove)."""
        return {k: v for k, v in tags.items() if not self.ignores(k)}

    def first_match(self, key: str) -> str | None:
        """The pattern that names `key`, for messages (None: none does)."""
        return next((p for p in self.patterns if matches(p, key)), None)
