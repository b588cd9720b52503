"""Points ledger: what each event is worth, taking points back, and the Score rows following the ledger."""

import pytest

from challenges import services
from challenges.models import PointEntry, Score
from collector import services as collector_services
from tests.challenges.helpers import (
    approved_photo, ledger_reasons, ledger_sum, make_challenge, points_of, review, upload_photo,
)
from tests.factories import make_label, make_reviewer, make_volunteer

pytestmark = pytest.mark.django_db


class TestApproval:
    def test_it_grants_points_on_approval_only(self):
        volunteer = make_volunteer()
        photo = upload_photo(volunteer=volunteer)
        assert points_of(volunteer.user) == 0 and not PointEntry.objects.exists()
        review(photo, "approve")
        assert ledger_reasons(volunteer.user) == [("approved", 10)]
        assert points_of(volunteer.user) == 10
        assert Score.objects.get(volunteer=volunteer.user, period="all").approved_photos == 1

    def test_it_adds_the_challenge_bonus_for_an_entry(self):
        challenge = make_challenge(bonus_points=7)
        volunteer = make_volunteer()
        photo = upload_photo(volunteer=volunteer, challenge=challenge)
        review(photo, "approve")
        assert sorted(ledger_reasons(volunteer.user)) == [("approved", 10), ("challenge_bonus", 7)]
        assert points_of(volunteer.user, f"c{challenge.pk}") == 17
        assert Score.objects.get(volunteer=volunteer.user, period=f"c{challenge.pk}").approved_photos == 1

    def test_it_gives_nothing_for_a_rejected_photo(self):
        volunteer = make_volunteer()
        review(upload_photo(volunteer=volunteer), "reject")
        assert points_of(volunteer.user) == 0
        assert not PointEntry.objects.exists()

    def test_it_takes_every_point_back_when_rejected_after_approval(self):
        challenge = make_challenge()
        volunteer, fan = make_volunteer(), make_volunteer()
        photo = upload_photo(volunteer=volunteer, challenge=challenge)
        review(photo, "approve")
        services.vote_cast(user=fan.user, photo_id=photo.pk)
        assert points_of(volunteer.user) == 10 + 20 + 2
        review(photo, "reject")
        assert points_of(volunteer.user) == 0
        assert points_of(volunteer.user, f"c{challenge.pk}") == 0
        assert Score.objects.get(volunteer=volunteer.user, period="all").approved_photos == 0
        take_backs = PointEntry.objects.filter(volunteer=volunteer.user, reverses__isnull=False)
        assert take_backs.count() == 3
        assert set(take_backs.values_list("note", flat=True)) == {"rejected after approval"}
        assert ledger_sum(volunteer.user) == 0

    def test_it_gives_points_again_when_approved_again(self):
        volunteer = make_volunteer()
        photo = upload_photo(volunteer=volunteer)
        review(photo, "approve")
        review(photo, "reject")
        review(photo, "approve")
        assert points_of(volunteer.user) == 10
        assert [r for r in ledger_reasons(volunteer.user)] == [("approved", 10), ("approved", -10), ("approved", 10)]

    def test_it_takes_points_back_when_the_volunteer_deletes_the_account(self):
        volunteer = make_volunteer()
        photo = approved_photo(volunteer=volunteer)
        fan = make_volunteer()
        services.vote_cast(user=fan.user, photo_id=photo.pk)
        collector_services.volunteer_delete(user=volunteer.user)
        assert not Score.objects.filter(volunteer_id=volunteer.user_id).exists()
        assert not PointEntry.objects.filter(volunteer_id=volunteer.user_id).exists()

    def test_it_drops_the_bonus_when_relabelled_away_from_the_challenge_label(self):
        challenge = make_challenge()
        volunteer = make_volunteer()
        photo = upload_photo(volunteer=volunteer, challenge=challenge)
        review(photo, "approve")
        other = make_label()
        collector_services.photo_relabel(photo_id=photo.pk, reviewer=make_reviewer(), label_slug=other.slug)
        assert points_of(volunteer.user) == 10
        assert points_of(volunteer.user, f"c{challenge.pk}") == 0
        assert PointEntry.objects.filter(active=True, photo=photo).count() == 1

    def test_settling_again_changes_nothing(self):
        volunteer = make_volunteer()
        photo = approved_photo(volunteer=volunteer, challenge=make_challenge())
        rows = PointEntry.objects.count()
        assert services.photo_points_settle(photo_id=photo.pk) == 0
        assert PointEntry.objects.count() == rows

    def test_it_reads_the_points_from_settings(self, settings):
        settings.POINTS_PHOTO_APPROVED = 3
        volunteer = make_volunteer()
        approved_photo(volunteer=volunteer)
        assert points_of(volunteer.user) == 3


class TestPhotoDeleted:
    def test_deleting_a_photo_row_takes_its_points_back(self):
        volunteer, fan = make_volunteer(), make_volunteer()
        photo = approved_photo(volunteer=volunteer, challenge=make_challenge())
        services.vote_cast(user=fan.user, photo_id=photo.pk)
        assert points_of(volunteer.user) == 32
        photo.delete()
        assert points_of(volunteer.user) == 0
        assert ledger_sum(volunteer.user) == 0
        assert not PointEntry.objects.filter(active=True).exists()
