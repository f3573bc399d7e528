"""Kubernetes' name rules, in one place: a DNS-1123 label (most object names) and subdomain (Secrets, accounts).

The spec checks step and pipeline names with them, parameter types (`dns-label`, `secret-name`) and
the Kubernetes compiler its options and generated objects.
"""

from __future__ import annotations

import re

LABEL_CHARS = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # at most 63 characters
DNS_1123_LABEL_ANY_LENGTH = re.compile(LABEL_CHARS)  # for checks that bound the length themselves
DNS_1123_SUBDOMAIN = re.compile(rf"(?=.{{1,253}}\Z){LABEL_CHARS}(\.{LABEL_CHARS})*")
LABEL_RULE = "at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit"
SUBDOMAIN_RULE = "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"


def is_dns_label(text: str) -> bool:
    """True for a DNS-1123 label: at most 63 lowercase letters, digits or '-', alphanumeric at both ends."""
    return DNS_1123_LABEL.fullmatch(text) is not None


def is_dns_subdomain(text: str) -> bool:
    """True for a DNS-1123 subdomain: dot-separated labels, at most 253 characters."""
    return DNS_1123_SUBDOMAIN.fullmatch(text) is not None
