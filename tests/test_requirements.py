"""The lower bounds of requirements.txt and the constraints `make test-min-deps` installs from them.

tools/min_constraints.py is checked against an independent reading of requirements.txt (``packaging``, the
parser pip itself vendors), so the minimum-versions run pins exactly what requirements.txt admits.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tools.min_constraints import (
    LowerBound,
    RequirementsError,
    constraints_text,
    installed_mismatches,
    lower_bounds,
    main,
    parse_line,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO_ROOT / "requirements.txt"


def _requirements() -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line]


def test_every_runtime_requirement_has_exactly_one_lower_bound_inside_its_range():
    for requirement in _requirements():
        lower = [s for s in requirement.specifier if s.operator in (">=", "~=", "==")]
        assert len(lower) == 1, requirement
        assert requirement.specifier.contains(lower[0].version), f"{requirement}: the lower bound is excluded"


def test_constraints_pin_each_requirement_at_its_lower_bound():
    expected = {}
    for requirement in _requirements():
        (lower,) = (s for s in requirement.specifier if s.operator in (">=", "~=", "=="))
        expected[requirement.name] = Version(lower.version)

    pins = [Requirement(line) for line in constraints_text(lower_bounds(REQUIREMENTS)).splitlines()
            if not line.startswith("#")]
    assert [pin.name for pin in pins] == list(expected)
    for pin in pins:
        (specifier,) = pin.specifier
        assert specifier.operator == "=="
        assert Version(specifier.version) == expected[pin.name]


def test_raised_bounds_stay_raised():
    """The versions below these bounds fail the suite (README, "How it is tested"): see requirements.txt."""
    minimum = {b.key: Version(b.version) for b in lower_bounds(REQUIREMENTS)}
    assert minimum["azure-mgmt-network"] >= Version("31")
    assert minimum["azure-mgmt-resourcegraph"] >= Version("8.0.1")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("azure-core>=1.32,<2", LowerBound("azure-core", "1.32")),
        ("Foo_Bar[extra] >= 2.0.1 , < 3 ; python_version >= '3.11'  # why", LowerBound("Foo_Bar", "2.0.1")),
        ("foo~=1.4", LowerBound("foo", "1.4")),
        ("foo==2.0,!=2.0.1", LowerBound("foo", "2.0")),
        ("   # only a comment", None),
        ("", None),
    ],
)
def test_parse_line(line, expected):
    assert parse_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "foo",  # no bound at all
        "foo<2",  # only an upper bound
        "foo>=1,>=2",  # two lower bounds: which one is the minimum is not for this tool to guess
        "foo==1.*",  # a wildcard is not an installable version
        "foo>=one",
        "-r other.txt",
        "--index-url https://example.invalid/simple",
        "foo @ https://example.invalid/foo.whl",
    ],
)
def test_parse_line_rejects_what_it_cannot_pin(line):
    with pytest.raises(RequirementsError):
        parse_line(line)


def test_lower_bounds_rejects_duplicates_and_empty_files(tmp_path):
    duplicated = tmp_path / "dup.txt"
    duplicated.write_text("azure-core>=1.32\nAzure_Core>=1.33\n", encoding="utf-8")
    with pytest.raises(RequirementsError, match="twice"):
        lower_bounds(duplicated)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(RequirementsError, match="no requirements"):
        lower_bounds(empty)


def test_installed_mismatches_compares_normalised_names_and_zero_padded_versions():
    pytest_version = metadata.version("pytest")
    assert installed_mismatches([LowerBound("PyTest", pytest_version + ".0")]) == []
    [wrong] = installed_mismatches([LowerBound("pytest", "0.0.1")])
    assert pytest_version in wrong and "expected 0.0.1" in wrong
    [missing] = installed_mismatches([LowerBound("no-such-distribution-asr", "1.0")])
    assert "not installed" in missing


def test_main_prints_constraints_and_checks_installed_versions(tmp_path, capsys):
    assert main([str(REQUIREMENTS)]) == 0
    assert capsys.readouterr().out == constraints_text(lower_bounds(REQUIREMENTS))

    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"pytest>={metadata.version('pytest')},<99\n", encoding="utf-8")
    assert main(["--check-installed", str(requirements)]) == 0
    requirements.write_text("pytest>=0.0.1\n", encoding="utf-8")
    assert main(["--check-installed", str(requirements)]) == 1
    assert "expected 0.0.1" in capsys.readouterr().err

    requirements.write_text("pytest\n", encoding="utf-8")
    assert main([str(requirements)]) == 1
    assert "no lower bound" in capsys.readouterr().err


@pytest.mark.parametrize("client_id", [None, "00000000-0000-0000-0000-000000000001"])
def test_default_credential_builds_with_the_installed_azure_identity(client_id, monkeypatch):
    """Nothing else in the suite constructs azure-identity's credential (the emulator tests use a fake one), so
    this keeps its lower bound honest: the keyword the app passes must exist in that version."""
    from azure.identity import DefaultAzureCredential

    from asr_remediate.azure.credentials import default_credential

    monkeypatch.delenv("AZURE_CLIENT_ID", raising=False)
    credential = default_credential(client_id)
    assert isinstance(credential, DefaultAzureCredential)
    credential.close()
