"""Forward-confirmed reverse DNS: PTR and forward checks pass, fail or are unknown."""

import pytest

from exporter.fcrdns import forward_check, ptr_check, same_name
from exporter.resolver import Answer, Status

FQDN = "mta1.example.com"


def records(*values: str) -> Answer:
    return Answer("answer", values)


# -- names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (FQDN, FQDN),
        ("MTA1.Example.COM", FQDN),
        ("mta1.example.com.", FQDN),
        (FQDN, "MTA1.EXAMPLE.COM."),
    ],
)
def test_same_name_ignores_case_and_a_trailing_dot(left: str, right: str) -> None:
    assert same_name(left, right)


def test_different_names_are_not_the_same() -> None:
    assert not same_name("mta1.example.com", "mta2.example.com")
    assert not same_name("mta1.example.com", "mta1.example.com.evil")


# -- PTR -----------------------------------------------------------------------------


def test_ptr_naming_the_host_passes() -> None:
    verdict = ptr_check(FQDN, records(FQDN))
    assert verdict.ok is True
    assert FQDN in verdict.detail


@pytest.mark.parametrize("name", ["MTA1.EXAMPLE.COM", "mta1.example.com.", "Mta1.Example.Com."])
def test_ptr_comparison_ignores_case_and_a_trailing_dot(name: str) -> None:
    assert ptr_check(FQDN, records(name)).ok is True


def test_one_of_several_ptr_names_matching_passes() -> None:
    assert ptr_check(FQDN, records("other.example.net", FQDN)).ok is True


def test_ptr_naming_another_host_fails_and_says_both_names() -> None:
    verdict = ptr_check(FQDN, records("static.192-0-2-10.isp.example"))
    assert verdict.ok is False
    assert "static.192-0-2-10.isp.example" in verdict.detail
    assert f"expected {FQDN}" in verdict.detail


@pytest.mark.parametrize("status", ["nxdomain", "nodata"])
def test_missing_ptr_fails(status: Status) -> None:
    verdict = ptr_check(FQDN, Answer(status))
    assert verdict.ok is False
    assert verdict.detail == "the IP has no PTR record"


@pytest.mark.parametrize("status", ["timeout", "servfail", "refused", "error"])
def test_failed_ptr_lookup_is_unknown(status: Status) -> None:
    verdict = ptr_check(FQDN, Answer(status))
    assert verdict.ok is None
    assert verdict.detail.startswith("PTR lookup failed: ")


# -- forward -------------------------------------------------------------------------


def test_host_resolving_to_the_ip_passes() -> None:
    verdict = forward_check(FQDN, "192.0.2.10", records("192.0.2.10"))
    assert verdict.ok is True
    assert verdict.detail == f"{FQDN} resolves to 192.0.2.10"


def test_one_of_several_addresses_matching_passes() -> None:
    assert forward_check(FQDN, "192.0.2.10", records("192.0.2.9", "192.0.2.10")).ok is True


def test_ipv6_spellings_are_compared_as_addresses() -> None:
    assert forward_check(FQDN, "2001:DB8:0::1", records("2001:db8::1")).ok is True
    assert forward_check(FQDN, "2001:db8::1", records("2001:0db8:0000::0001")).ok is True


def test_host_resolving_elsewhere_fails_and_says_where() -> None:
    verdict = forward_check(FQDN, "192.0.2.10", records("198.51.100.7"))
    assert verdict.ok is False
    assert verdict.detail == f"{FQDN} resolves to 198.51.100.7, not 192.0.2.10"


def test_different_ipv6_address_fails() -> None:
    assert forward_check(FQDN, "2001:db8::1", records("2001:db8::2")).ok is False


@pytest.mark.parametrize(("ip", "kind"), [("192.0.2.10", "A"), ("2001:db8::1", "AAAA")])
def test_host_without_an_address_of_the_family_fails(ip: str, kind: str) -> None:
    verdict = forward_check(FQDN, ip, Answer("nodata"))
    assert verdict.ok is False
    assert verdict.detail == f"{FQDN} has no {kind} record"


def test_nxdomain_host_fails() -> None:
    assert forward_check(FQDN, "192.0.2.10", Answer("nxdomain")).ok is False


@pytest.mark.parametrize("status", ["timeout", "servfail", "refused", "error"])
def test_failed_forward_lookup_is_unknown(status: Status) -> None:
    verdict = forward_check(FQDN, "192.0.2.10", Answer(status))
    assert verdict.ok is None
    assert verdict.detail.startswith(f"lookup of {FQDN} failed: ")
