"""Fixtures for the Azure shell tests: a started HTTPS ARM emulator and clients pointed at it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import trustme

from tests.emulator.arm_emulator import ArmEmulator
from tests.emulator.fixtures import FakeCredential, FakeSleep
from tests.emulator.test_function_app import app_env  # noqa: F401 (the Function App environment, shared)
from tests.rbac import missing_from_role
from tests.scenario import REPO


@pytest.fixture(scope="session")
def emulator_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def arm(emulator_ca: trustme.CA) -> Iterator[ArmEmulator]:
    """A started emulator. Afterwards, every request the code sent through the Azure SDK must be allowed by the
    custom role (infra/role.bicep): a new ARM call without its RBAC action fails the test that makes it."""
    with ArmEmulator(ca=emulator_ca) as emulator:
        yield emulator
        lacking = missing_from_role(emulator.requests)
        assert not lacking, f"infra/role.bicep lacks the RBAC action(s) this test's ARM calls need: {sorted(lacking)}"


@pytest.fixture
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def estate_arm(arm: ArmEmulator) -> ArmEmulator:
    """The emulator holding the bundled example estate (examples/estate.json) and its Service Tags."""
    arm.add_all(json.loads((REPO / "examples" / "estate.json").read_text()))
    arm.service_tags = json.loads((REPO / "examples" / "ServiceTags_Public_20251028.json").read_text())
    return arm
