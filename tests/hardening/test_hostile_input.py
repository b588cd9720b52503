"""Hostile query strings and bodies get a 4xx in the error shape, never a 500."""

import pytest
from django.test import Client

from tests.challenges.helpers import approved_photo
from tests.factories import client_for, make_reviewer, make_volunteer

pytestmark = pytest.mark.django_db

HUGE = "9223372036854775807"
BAD_PAGES = [HUGE, "-1", "0", "abc", "1e9", "99999999999999999999999999"]


def assert_error_shape(response, status=None):
    assert response.status_code < 500, response.content[:300]
    assert 400 <= response.status_code < 500
    if status is not None:
        assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "fields"} <= set(body["error"])
    return body["error"]


@pytest.fixture
def board(settings):
    settings.PHOTO_UPLOAD_RATE = "100000/hour"
    for name in ("alice", "bob", "carol"):
        approved_photo(volunteer=make_volunteer(name))


class TestLeaderboardApiPages:
    @pytest.mark.parametrize("page", BAD_PAGES)
    def test_it_refuses_a_page_that_cannot_exist(self, client, board, page):
        assert_error_shape(client.get(f"/api/v1/leaderboard/?period=all&page={page}"))

    def test_a_page_past_the_data_is_a_404(self, client, board):
        assert client.get("/api/v1/leaderboard/?period=all&page=3&page_size=1").status_code == 200
        error = assert_error_shape(client.get("/api/v1/leaderboard/?period=all&page=4&page_size=1"), 404)
        assert error["code"] == "invalid_page"

    @pytest.mark.parametrize("size", [HUGE, "-1", "0", "abc", "101"])
    def test_it_refuses_a_page_size_out_of_range(self, client, board, size):
        error = assert_error_shape(client.get(f"/api/v1/leaderboard/?period=all&page_size={size}"), 400)
        assert "page_size" in error["fields"]

    def test_an_empty_board_still_has_a_first_page(self, client):
        response = client.get("/api/v1/leaderboard/?period=all&page=1")
        assert response.status_code == 200 and response.json()["results"] == []


class TestLeaderboardPagePages:
    @pytest.mark.parametrize("page", [HUGE, "99999999999999999999999999", "1000"])
    def test_a_page_past_the_data_is_not_found(self, client, board, page):
        response = client.get(f"/leaderboard/?period=all&page={page}")
        assert response.status_code == 404

    @pytest.mark.parametrize("page", ["-1", "0", "abc"])
    def test_a_page_that_is_not_a_page_number_shows_the_first(self, client, board, page):
        response = client.get(f"/leaderboard/?period=all&page={page}")
        assert response.status_code == 200 and "alice" in response.content.decode()


class TestOtherPaginatedApis:
    @pytest.mark.parametrize("page", BAD_PAGES + ["2"])
    def test_my_photos_refuses_a_page_that_cannot_exist(self, board, page):
        api = client_for(make_volunteer("dave").user)
        assert_error_shape(api.get(f"/api/v1/photos/?page={page}"), 404)

    @pytest.mark.parametrize("page", BAD_PAGES + ["2"])
    def test_the_model_list_refuses_a_page_that_cannot_exist(self, page):
        api = client_for(make_volunteer("erin").user)
        assert_error_shape(api.get(f"/api/v1/models/?page={page}"), 404)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


class TestDeeplyNestedJson:
    @pytest.mark.parametrize("body", [nested(100_000), nested_object(100_000), nested(900), nested(33)])
    @pytest.mark.parametrize("path", ["/api/v1/volunteers/", "/api/v1/auth/token/", "/api/v1/newsletter/subscribe/"])
    def test_anonymous_endpoints_answer_400(self, path, body):
        response = Client().post(path, body, content_type="application/json")
        error = assert_error_shape(response, 400)
        assert "nested" in error["message"]

    def test_a_signed_in_volunteer_gets_400_on_me(self):
        api = client_for(make_volunteer("frank").user)
        response = api.generic("PATCH", "/api/v1/me/", nested(100_000), content_type="application/json")
        assert_error_shape(response, 400)

    def test_a_reviewer_gets_400_on_review(self, board):
        from collector.models import Photo

        api = client_for(make_reviewer())
        response = api.generic("POST", f"/api/v1/photos/{Photo.objects.first().pk}/review/", nested_object(100_000),
                               content_type="application/json")
        assert_error_shape(response, 400)

    def test_nesting_within_the_limit_reaches_validation(self):
        response = Client().post("/api/v1/auth/token/", '{"username": [[["x"]]], "password": "y"}',
                                 content_type="application/json")
        error = assert_error_shape(response, 400)
        assert "username" in error["fields"]
