"""Migrations 0006/0007: existing volunteers get their display-name key; younger look-alikes are renamed."""

from datetime import datetime, timedelta, timezone

import pytest

from collector.lib.names import display_name_key
from tests.migration_steps import migrate_forward, state_at

BEFORE = [("collector", "0005_storage_sweep")]


@pytest.fixture
def old_state():
    """The database as it was before the key, then migrated forward again whatever the test did."""
    yield from state_at(BEFORE)


@pytest.mark.django_db(transaction=True)
def test_the_oldest_keeps_its_name_and_younger_look_alikes_are_renamed(old_state, capsys):
    User = old_state.get_model("auth", "User")
    Volunteer = old_state.get_model("collector", "Volunteer")
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def volunteer(name, days):
        user = User.objects.create(username=name)
        row = Volunteer.objects.create(user=user, display_name=name, consent_training=True)
        Volunteer.objects.filter(pk=row.pk).update(created_at=start + timedelta(days=days))
        return user.pk

    cyrillic = volunteer("\u0430lice", 2)       # made first (lower id) but joined later
    latin = volunteer("alice", 1)
    blocker = volunteer(f"alice-{cyrillic}", 3)  # already holds the first name a rename would take
    full_width = volunteer("\uff41lice", 4)
    bob, b0b = volunteer("bob", 5), volunteer("b0b", 6)

    migrate_forward()

    from collector.models import Volunteer as Current

    names = dict(Current.objects.values_list("user_id", "display_name"))
    assert names[latin] == "alice" and names[bob] == "bob" and names[blocker] == f"alice-{cyrillic}"
    assert names[cyrillic] == f"\u0430lice-{cyrillic}-2"
    assert names[full_width] == f"\uff41lice-{full_width}"
    assert names[b0b] == f"b0b-{b0b}"
    for row in Current.objects.all():
        assert row.display_name_key == display_name_key(row.display_name)
    assert len(set(Current.objects.values_list("display_name_key", flat=True))) == 6
    assert User.objects.get(pk=cyrillic).username == "\u0430lice", "they still sign in as before"
    report = capsys.readouterr().out
    assert report.count("renamed") == 3 and "'b0b' (user" in report
