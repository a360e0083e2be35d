"""IPv4 interval sets.

ASR's requirements are sets of addresses (a service tag is hundreds of prefixes), and NSG rules and routes each
claim part of such a set. Evaluating whole sets instead of sample addresses is what lets the engine say
"rule X denies 12 of the 124 Storage.EastUS prefixes" and be exactly right. An ``IPSet`` is an immutable,
sorted tuple of disjoint, non-adjacent closed intervals of 32-bit integers.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, TypeVar

MAX_IPV4 = 2**32 - 1
_ABOVE = 2**33  # sorts after any interval end: bisect on (start, _ABOVE) finds the last interval starting <= start
_LOPSIDED = 3  # size ratio from which intersection binary-searches the larger set instead of merging (measured on tags)


class PrefixError(ValueError):
    """An address prefix that is not a valid IPv4 address or CIDR block."""


@lru_cache(maxsize=1 << 16)
def parse_ipv4_prefix(text: str) -> tuple[int, int]:
    """Return the closed interval [first, last] of an IPv4 address or CIDR (host bits tolerated, as ARM does).

    Memoised: an estate repeats the same prefixes (rule lists, service tags, routes) thousands of times.
    """
    quick = _plain_prefix(text.strip())
    if quick is not None:
        return quick
    try:
        network = ipaddress.IPv4Network(text.strip(), strict=False)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError) as error:
        raise PrefixError(f"not an IPv4 address or prefix: {text!r}") from error
    return int(network.network_address), int(network.broadcast_address)


def _plain_prefix(text: str) -> tuple[int, int] | None:
    """``a.b.c.d`` or ``a.b.c.d/n`` in the form ``ipaddress`` surely accepts — four ASCII decimal octets of 1-3 digits
    without a leading zero, each at most 255, and a length of 1-2 ASCII digits at most 32 — parsed without building
    an ``IPv4Network`` (a cold 10k-VM scan parses 50,000 distinct prefixes); None for anything else (netmask forms,
    errors), which ``ipaddress`` decides. ``tests/test_properties.py`` checks it against ``ipaddress``."""
    address, slash, length_text = text.partition("/")
    if slash:
        if not (0 < len(length_text) <= 2 and length_text.isascii() and length_text.isdigit()):
            return None
        length = int(length_text)
        if length > 32:
            return None
    else:
        length = 32
    octets = address.split(".")
    if len(octets) != 4:
        return None
    value = 0
    for octet in octets:
        if not (0 < len(octet) <= 3 and octet.isascii() and octet.isdigit()) or (octet[0] == "0" and octet != "0"):
            return None
        number = int(octet)
        if number > 255:
            return None
        value = value << 8 | number
    host = (1 << (32 - length)) - 1
    first = value & ~host & MAX_IPV4
    return first, first | host


def parse_ipv4_range(text: str) -> tuple[int, int]:
    """An IPv4 address, CIDR or range "first-last" (Azure Firewall rules and IP groups accept all three) as the closed
    interval [first, last]; PrefixError otherwise."""
    first, dash, last = text.strip().partition("-")
    if not dash:
        return parse_ipv4_prefix(text)
    try:
        start = int(ipaddress.IPv4Address(first.strip()))
        end = int(ipaddress.IPv4Address(last.strip()))
    except ValueError as error:
        raise PrefixError(f"not an IPv4 address range: {text!r}") from error
    if start > end:
        raise PrefixError(f"not an IPv4 address range (first after last): {text!r}")
    return start, end


def is_ipv4_prefix(text: str) -> bool:
    """True for '10.0.0.0/8' or '1.2.3.4'; False for tags, '*', IPv6 and garbage."""
    try:
        parse_ipv4_prefix(text)
    except PrefixError:
        return False
    return True


def is_ipv6_prefix(text: str) -> bool:
    try:
        ipaddress.IPv6Network(text.strip(), strict=False)
    except ValueError:
        return False
    return True


def _normalise(intervals: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if start > end:
            continue
        if merged and start <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


@dataclass(frozen=True, slots=True)
class IPSet:
    """An immutable set of IPv4 addresses stored as merged closed intervals."""

    intervals: tuple[tuple[int, int], ...] = ()

    @staticmethod
    def of(intervals: Iterable[tuple[int, int]]) -> IPSet:
        return IPSet(_normalise(intervals))

    @staticmethod
    def from_prefixes(prefixes: Iterable[str]) -> IPSet:
        """Build from IPv4 prefixes; IPv6 prefixes are skipped (ASR's flows here are IPv4), anything else raises."""
        intervals = []
        for prefix in prefixes:
            if ":" in prefix and is_ipv6_prefix(prefix):
                continue
            intervals.append(parse_ipv4_prefix(prefix))
        return IPSet.of(intervals)

    @staticmethod
    def everything() -> IPSet:
        return IPSet(((0, MAX_IPV4),))

    @staticmethod
    def address(text: str) -> IPSet:
        start, end = parse_ipv4_prefix(text)
        return IPSet(((start, end),))

    def __bool__(self) -> bool:
        return bool(self.intervals)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.intervals)

    def __len__(self) -> int:
        return len(self.intervals)

    @property
    def size(self) -> int:
        """Number of addresses in the set."""
        return sum(end - start + 1 for start, end in self.intervals)

    def contains(self, address: int) -> bool:
        lo, hi = 0, len(self.intervals) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            start, end = self.intervals[mid]
            if address < start:
                hi = mid - 1
            elif address > end:
                lo = mid + 1
            else:
                return True
        return False

    def union(self, other: IPSet) -> IPSet:
        if not other.intervals:
            return self
        if not self.intervals:
            return other
        if self.intervals == other.intervals:
            return self  # accumulating the findings of many VMs that share one (memoised) set: no re-sort
        return IPSet(_normalise(self.intervals + other.intervals))

    def intersection(self, other: IPSet) -> IPSet:
        a, b = self.intervals, other.intervals
        if not a or not b or a[-1][1] < b[0][0] or b[-1][1] < a[0][0]:
            return EMPTY
        if a == b:
            return self  # a rule covering exactly what is left: compared in C, not merged in Python
        result: list[tuple[int, int]] = []
        if len(a) > _LOPSIDED * len(b):
            a, b = b, a
        if len(b) > _LOPSIDED * len(a):
            # A few intervals against many (a NIC's VNet, a rule's /8, against a service tag): binary search, not a
            # full merge; the intervals of ``b`` strictly inside one of ``a`` are copied as a slice.
            for start, end in a:
                low = bisect.bisect_right(b, (start, _ABOVE)) - 1
                if low < 0 or b[low][1] < start:
                    low += 1
                high = bisect.bisect_right(b, (end, _ABOVE), low)  # b[low:high] meet [start, end]
                if high - low == 1:
                    result.append((max(start, b[low][0]), min(end, b[low][1])))
                elif high > low:
                    # Disjoint sorted intervals: only the first can start before ``start``, only the last end after.
                    result.append((max(start, b[low][0]), b[low][1]))
                    result.extend(b[low + 1:high - 1])
                    result.append((b[high - 1][0], min(end, b[high - 1][1])))
            return IPSet(tuple(result))
        i = j = 0
        while i < len(a) and j < len(b):
            start = max(a[i][0], b[j][0])
            end = min(a[i][1], b[j][1])
            if start <= end:
                result.append((start, end))
            if a[i][1] < b[j][1]:
                i += 1
            else:
                j += 1
        return IPSet(tuple(result))

    def difference(self, other: IPSet) -> IPSet:
        a, b = self.intervals, other.intervals
        if not a or not b or a[-1][1] < b[0][0] or b[-1][1] < a[0][0]:
            return self
        if a == b:
            # The common case in the NSG walk: a rule takes all that is left of a 500-interval tag.
            return EMPTY
        result: list[tuple[int, int]] = []
        j = 0
        for start, end in self.intervals:
            current = start
            while j < len(b) and b[j][1] < current:
                j += 1
            k = j
            while k < len(b) and b[k][0] <= end:
                if b[k][0] > current:
                    result.append((current, b[k][0] - 1))
                current = max(current, b[k][1] + 1)
                if current > end:
                    break
                k += 1
            if current <= end:
                result.append((current, end))
        return IPSet(tuple(result))

    def complement(self) -> IPSet:
        return IPSet.everything().difference(self)

    def issubset(self, other: IPSet) -> bool:
        b = other.intervals
        k = 0
        for start, end in self.intervals:
            # The interval of ``other`` that could contain [start, end]: the last one starting at or before it.
            k = bisect.bisect_right(b, (start, _ABOVE), k) - 1
            if k < 0 or b[k][1] < end:
                return False
        return True

    def overlaps(self, other: IPSet) -> bool:
        a, b = self.intervals, other.intervals
        if len(a) > len(b):
            a, b = b, a
        for start, end in a:
            k = bisect.bisect_right(b, (end, _ABOVE)) - 1
            if k >= 0 and b[k][1] >= start:
                return True
        return False

    def __or__(self, other: IPSet) -> IPSet:
        return self.union(other)

    def __and__(self, other: IPSet) -> IPSet:
        return self.intersection(other)

    def __sub__(self, other: IPSet) -> IPSet:
        return self.difference(other)

    def to_cidrs(self) -> list[str]:
        """The minimal list of CIDR blocks covering exactly this set (what a prefix-style rule or route carries)."""
        cidrs: list[str] = []
        for start, end in self.intervals:
            first = ipaddress.IPv4Address(start)
            last = ipaddress.IPv4Address(end)
            cidrs.extend(str(net) for net in ipaddress.summarize_address_range(first, last))
        return cidrs

    def __str__(self) -> str:
        cidrs = self.to_cidrs()
        shown = ", ".join(cidrs[:4])
        return shown + (f", … ({len(cidrs)} prefixes)" if len(cidrs) > 4 else "")


EMPTY = IPSet()


def address_to_int(text: str) -> int:
    return int(ipaddress.IPv4Address(text.strip()))


V = TypeVar("V")


class IdentityCache(Generic[V]):
    """A memo of values derived from immutable objects (NSGs, route tables, tag sets), keyed by their identity.

    Hashing a 200-rule NSG or a 1,000-interval tag set on every lookup would cost more than many evaluations;
    identity is free, and sound because the objects are frozen. Each entry holds its key objects, so their ids
    cannot be reused while it is cached. Bounded: the memo empties itself when full.
    """

    def __init__(self, limit: int = 1 << 16) -> None:
        self._limit = limit
        self._entries: dict[tuple[Hashable, ...], tuple[tuple[object, ...], V]] = {}
        _MEMOS.append(self)  # module-level memos only (every one is): clear_memos() empties them all

    def get(self, objects: tuple[object, ...], extra: Hashable, build: Callable[[], V]) -> V:
        """The value for (``objects`` by identity, ``extra`` by value), built once with ``build()``."""
        # One flat tuple, not the ids' own tuple inside one: ``extra`` is always its last item, so equal idents have
        # the same length, hence the same objects and the same extra, even where the objects vary in number.
        ident = (*map(id, objects), extra)
        hit = self._entries.get(ident)
        if hit is not None:
            # The entry keeps its objects alive, and live objects never share an id: same ids, same objects.
            return hit[1]
        value = build()
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[ident] = (objects, value)
        return value

    def clear(self) -> None:
        self._entries.clear()


_MEMOS: list[IdentityCache[Any]] = []


def clear_memos() -> None:
    """Empty every IdentityCache. Their entries are keyed by, and hold alive, one estate's objects: a later scan
    reads a new estate (another run, another event) and can hit none of them, so past its scan an entry only keeps
    that estate's NSGs, tag sets and pieces in memory, and has the next garbage collection traverse them."""
    for memo in _MEMOS:
        memo.clear()
