"""``spec.egress``: the IP ranges a source's fetcher may reach."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field

from restlake.contracts.model import SpecModel
from restlake.contracts.patterns import CIDR


def _check_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"must be an IP range in CIDR notation such as 203.0.113.0/24, got {value!r}"
        ) from None
    return value


class Egress(SpecModel):
    """Where the fetcher may connect when the installation renders egress NetworkPolicies.

    A NetworkPolicy matches IP addresses, not host names, so the API's hosts are given as IP ranges.
    """

    cidrs: list[Annotated[str, Field(max_length=43, pattern=CIDR), AfterValidator(_check_cidr)]] = Field(
        default_factory=list,
        max_length=32,
        description="IP ranges (CIDR) of the API's hosts, and of the OAuth token endpoint's; the fetcher "
        "may reach them on the ports of request.url and auth.tokenUrl only. Empty allows those ports on "
        "any address outside the installation's excluded ranges (networkPolicy.exceptCidrs).",
    )
