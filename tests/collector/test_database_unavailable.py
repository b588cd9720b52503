import pytest
from django.db import OperationalError

from collector.models import Photo
from tests.conftest import stored_files
from tests.factories import client_for, make_label, make_volunteer, upload


@pytest.mark.django_db
class TestDatabaseUnavailable:
    def test_it_answers_503_in_the_error_shape_and_keeps_no_files(self, settings, monkeypatch):
        label = make_label("mug")
        client = client_for(make_volunteer().user)

        def locked(*args, **kwargs):
            raise OperationalError("database is locked")

        monkeypatch.setattr(Photo.objects, "create", locked)
        response = upload(client, label=label.slug)

        assert response.status_code == 503
        assert response.json()["error"]["code"] == "database_unavailable"
        assert stored_files(settings.MEDIA_ROOT) == []


@pytest.mark.django_db(transaction=True)
class TestDisplayNameRace:
    def test_names_differing_only_in_case_cannot_both_exist(self):
        from django.db import IntegrityError

        from collector.models import Volunteer

        first = make_volunteer("Bob")
        with pytest.raises(IntegrityError):
            Volunteer.objects.create(user=make_volunteer("other").user.__class__.objects.create(username="bob"),
                                     display_name="bob", consent_training=True)
        assert Volunteer.objects.filter(display_name__iexact="bob").count() == 1
        assert first.display_name == "Bob"
