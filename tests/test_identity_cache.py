"""ipset.IdentityCache against a plain oracle: a dict keyed by the objects themselves (by identity) and ``extra``.

The memo's key is one flat tuple of the objects' ids with ``extra`` last; the objects vary in number at some call sites
(privatelink passes ``*requirements``), so the property is that no two different (objects, extra) questions — of any
lengths, with extras that are themselves ints like ids or tuples — share an answer, and that the same question is
built once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from asr_remediate.ipset import IdentityCache


class _Thing:
    """A distinct object per instance (compared by identity only, as the memo's key objects are)."""


POOL = [_Thing() for _ in range(4)]
_EXTRAS = st.one_of(st.none(), st.integers(), st.sampled_from([id(t) for t in POOL]), st.text(max_size=2),
                    st.tuples(st.integers(0, 3), st.text(max_size=1)))
_QUESTIONS = st.lists(st.tuples(st.lists(st.integers(0, 3), max_size=3), _EXTRAS), max_size=30)


@given(_QUESTIONS)
def test_each_question_is_built_once_and_answered_with_its_own_value(questions) -> None:
    memo: IdentityCache[tuple[tuple[int, ...], object]] = IdentityCache()
    builds: list[tuple[tuple[int, ...], object]] = []
    for picks, extra in questions:
        objects = tuple(POOL[i] for i in picks)
        question = (tuple(picks), extra)

        def build(question: tuple[tuple[int, ...], object] = question) -> tuple[tuple[int, ...], object]:
            builds.append(question)
            return question

        assert memo.get(objects, extra, build) == question
    assert sorted(map(repr, builds)) == sorted({repr(q) for q in ((tuple(p), e) for p, e in questions)})
