"""Fixtures for the Azure shell tests: a started HTTPS ARM emulator and clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trustme

from tests.emulator.arm_emulator import ArmEmulator
from tests.emulator.fixtures import FakeCredential, FakeSleep


@pytest.fixture(scope="session")
def emulator_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def arm(emulator_ca: trustme.CA) -> Iterator[ArmEmulator]:
    with ArmEmulator(ca=emulator_ca) as emulator:
        yield emulator


@pytest.fixture
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()
