"""IPSet: construction, algebra, membership, size and CIDR output, checked against ipaddress arithmetic."""

from __future__ import annotations

import ipaddress

import pytest

from asr_remediate.ipset import (
    EMPTY,
    MAX_IPV4,
    IPSet,
    PrefixError,
    address_to_int,
    is_ipv4_prefix,
    is_ipv6_prefix,
    parse_ipv4_prefix,
)


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def net(text: str) -> IPSet:
    return IPSet.from_prefixes([text])


# --- parsing ---------------------------------------------------------------------------------------------------


def test_parse_prefix_gives_closed_interval_and_tolerates_host_bits():
    assert parse_ipv4_prefix("10.0.0.0/8") == (ip("10.0.0.0"), ip("10.255.255.255"))
    assert parse_ipv4_prefix("10.1.2.3/24") == (ip("10.1.2.0"), ip("10.1.2.255"))  # ARM accepts host bits
    assert parse_ipv4_prefix(" 1.2.3.4 ") == (ip("1.2.3.4"), ip("1.2.3.4"))
    assert parse_ipv4_prefix("0.0.0.0/0") == (0, MAX_IPV4)
    assert parse_ipv4_prefix("255.255.255.255/32") == (MAX_IPV4, MAX_IPV4)


@pytest.mark.parametrize("bad", ["Storage", "*", "", "10.0.0.0/33", "256.0.0.1", "2001:db8::/32", "10.0.0"])
def test_parse_prefix_rejects_non_ipv4(bad):
    with pytest.raises(PrefixError, match="not an IPv4"):
        parse_ipv4_prefix(bad)
    assert not is_ipv4_prefix(bad)


def test_prefix_classifiers():
    assert is_ipv4_prefix("1.2.3.4") and is_ipv4_prefix("1.2.3.0/24")
    assert is_ipv6_prefix("2001:db8::/32") and is_ipv6_prefix("::1")
    assert not is_ipv6_prefix("1.2.3.0/24") and not is_ipv6_prefix("Storage")
    assert address_to_int(" 10.0.0.1") == ip("10.0.0.1")


def test_from_prefixes_skips_ipv6_but_rejects_garbage():
    assert IPSet.from_prefixes(["2001:db8::/32", "10.0.0.0/31"]) == IPSet.of([(ip("10.0.0.0"), ip("10.0.0.1"))])
    assert IPSet.from_prefixes(["2603:1000::/40"]) == EMPTY
    with pytest.raises(PrefixError):
        IPSet.from_prefixes(["10.0.0.0/8", "Storage"])


# --- normalisation ---------------------------------------------------------------------------------------------


def test_of_merges_overlapping_and_adjacent_and_drops_empty_intervals():
    s = IPSet.of([(10, 20), (21, 30), (5, 12), (40, 50), (45, 41), (60, 60)])
    assert s.intervals == ((5, 30), (40, 50), (60, 60))
    assert len(s) == 3 and s.size == 26 + 11 + 1


def test_adjacent_cidrs_merge_into_one_interval():
    s = IPSet.from_prefixes(["10.0.0.0/25", "10.0.0.128/25", "10.0.1.0/24"])
    assert s.intervals == ((ip("10.0.0.0"), ip("10.0.1.255")),)
    assert s.to_cidrs() == ["10.0.0.0/23"]


def test_equality_is_by_content():
    assert IPSet.from_prefixes(["10.0.0.0/24"]) == IPSet.of([(ip("10.0.0.128"), ip("10.0.0.255")),
                                                             (ip("10.0.0.0"), ip("10.0.0.127"))])


# --- algebra ---------------------------------------------------------------------------------------------------


def test_union_intersection_difference_on_cidrs():
    a = net("10.0.0.0/24")
    b = IPSet.from_prefixes(["10.0.0.128/25", "10.0.1.0/24"])
    assert (a | b).to_cidrs() == ["10.0.0.0/23"]
    assert (a & b).to_cidrs() == ["10.0.0.128/25"]
    assert (a - b).to_cidrs() == ["10.0.0.0/25"]
    assert (b - a).to_cidrs() == ["10.0.1.0/24"]
    assert a.union(EMPTY) == a and EMPTY.union(a) == a
    assert a & EMPTY == EMPTY and a - EMPTY == a and EMPTY - a == EMPTY


def test_difference_punching_holes():
    whole = net("10.0.0.0/24")
    holes = IPSet.from_prefixes(["10.0.0.0/32", "10.0.0.10/31", "10.0.0.255/32", "10.0.0.64/26"])
    rest = whole - holes
    expected = {int(a) for a in ipaddress.IPv4Network("10.0.0.0/24")} - {
        ip("10.0.0.0"), ip("10.0.0.10"), ip("10.0.0.11"), ip("10.0.0.255"),
        *range(ip("10.0.0.64"), ip("10.0.0.128")),
    }
    assert rest.size == len(expected)
    assert all(rest.contains(a) == (a in expected) for a in range(ip("10.0.0.0") - 2, ip("10.0.1.0") + 2))


def test_difference_with_many_small_subtrahends_across_intervals():
    a = IPSet.of([(0, 9), (20, 29), (40, 49)])
    b = IPSet.of([(5, 22), (25, 25), (28, 41), (48, 100)])
    assert (a - b).intervals == ((0, 4), (23, 24), (26, 27), (42, 47))


def test_complement_including_edge_addresses():
    everything = IPSet.everything()
    assert everything.size == 2**32 and everything.to_cidrs() == ["0.0.0.0/0"]
    assert EMPTY.complement() == everything
    assert everything.complement() == EMPTY
    edges = IPSet.from_prefixes(["0.0.0.0", "255.255.255.255"])
    inner = edges.complement()
    assert inner.intervals == ((1, MAX_IPV4 - 1),)
    assert not inner.contains(0) and not inner.contains(MAX_IPV4)
    assert inner.contains(1) and inner.contains(MAX_IPV4 - 1)
    assert inner.complement() == edges
    assert inner.size == 2**32 - 2


def test_edge_addresses_in_union_and_difference():
    low = IPSet.address("0.0.0.0")
    high = IPSet.address("255.255.255.255")
    assert (low | high).to_cidrs() == ["0.0.0.0/32", "255.255.255.255/32"]
    assert (IPSet.everything() - low).to_cidrs()[0] == "0.0.0.1/32"
    assert (IPSet.everything() - high).to_cidrs()[-1] == "255.255.255.254/32"
    assert (IPSet.everything() - low - high).size == 2**32 - 2
    assert net("255.255.255.0/24").contains(MAX_IPV4)
    assert net("0.0.0.0/24").contains(0)


def test_subset_and_overlap():
    a = net("10.0.0.0/24")
    assert net("10.0.0.64/26").issubset(a)
    assert not net("10.0.0.0/23").issubset(a)
    assert EMPTY.issubset(a) and not a.issubset(EMPTY)
    assert a.overlaps(net("10.0.0.255/32")) and not a.overlaps(net("10.0.1.0/24"))
    assert not EMPTY.overlaps(a)


def test_contains_binary_search_on_many_intervals():
    s = IPSet.of([(i * 10, i * 10 + 2) for i in range(100)])
    for value in range(-1, 1005):
        assert s.contains(value) == (0 <= value < 1000 and value % 10 <= 2), value


def test_bool_len_iter_size():
    assert not EMPTY and len(EMPTY) == 0 and EMPTY.size == 0 and list(EMPTY) == []
    s = IPSet.from_prefixes(["1.0.0.0/24", "3.0.0.0/30"])
    assert s and len(s) == 2 and s.size == 260
    assert list(s) == [(ip("1.0.0.0"), ip("1.0.0.255")), (ip("3.0.0.0"), ip("3.0.0.3"))]


# --- CIDR output -------------------------------------------------------------------------------------------------


def test_to_cidrs_is_the_minimal_aligned_cover():
    s = IPSet.of([(ip("10.0.0.1"), ip("10.0.0.6"))])
    assert s.to_cidrs() == ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
    s = IPSet.of([(ip("10.0.0.0"), ip("10.0.2.255"))])
    assert s.to_cidrs() == ["10.0.0.0/23", "10.0.2.0/24"]
    assert EMPTY.to_cidrs() == []


def test_to_cidrs_round_trip_on_a_real_tag_shape():
    prefixes = ["20.38.98.0/24", "20.38.99.0/24", "20.47.1.0/24", "20.47.16.0/23", "52.239.152.0/22", "1.2.3.4"]
    s = IPSet.from_prefixes(prefixes)
    assert IPSet.from_prefixes(s.to_cidrs()) == s
    networks = [ipaddress.IPv4Network(p) for p in prefixes]
    assert s.size == sum(n.num_addresses for n in ipaddress.collapse_addresses(networks))
    assert s.to_cidrs() == [str(n) for n in ipaddress.collapse_addresses(networks)]


def test_str_shows_first_prefixes_and_count():
    assert str(net("10.0.0.0/24")) == "10.0.0.0/24"
    many = IPSet.from_prefixes([f"10.0.{i}.0/24" for i in range(0, 20, 2)])
    assert str(many).startswith("10.0.0.0/24, 10.0.2.0/24, 10.0.4.0/24, 10.0.6.0/24, … (10 prefixes)")
