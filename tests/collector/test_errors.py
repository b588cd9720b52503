"""The one error shape {"error": {"code", "message", "fields"}} for every kind of API error."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from collector import selectors
from tests.collector.asserts import assert_error
from tests.factories import client_for, image_bytes, make_reviewer, upload


@pytest.mark.django_db
class TestErrorShape:
    @pytest.mark.parametrize("path", ["/api/v1/nope/", "/api/v1/photos/abc/", "/api/nothing", "/api/v1/photos/1/extra/"])
    def test_an_unknown_api_url_is_a_json_404(self, path):
        assert_error(Client().get(path), 404, "not_found")

    @pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
    def test_an_unknown_api_url_is_a_json_404_for_writes_too(self, method):
        """With CSRF checks on, as for a real client: no HTML "CSRF verification failed" page (403)."""
        response = getattr(Client(enforce_csrf_checks=True), method)("/api/v1/votes/abc/", HTTP_COOKIE="sessionid=x")
        assert_error(response, 404, "not_found")

    def test_an_unknown_api_url_is_a_json_404_with_debug_on_too(self, settings):
        settings.DEBUG = True  # as under `make run`: Django's debug 404 page must not answer the API
        assert_error(Client().get("/api/v1/nope/"), 404, "not_found")
        assert_error(Client().get("/api/v1/photos/1/extra/"), 404, "not_found")

    def test_a_missing_trailing_slash_still_redirects(self):
        response = Client().get("/api/v1/labels")
        assert response.status_code == 301 and response["Location"] == "/api/v1/labels/"

    def test_an_unknown_page_url_stays_html(self):
        response = Client().get("/surely-not-a-page/")
        assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")

    def test_401(self):
        assert_error(APIClient().get("/api/v1/me/"), 401, "not_authenticated")

    def test_403(self, api, label):
        from tests.factories import make_photo

        photo = make_photo(label=label)
        assert_error(api.post(f"/api/v1/photos/{photo.pk}/review/", {"decision": "approve"}, format="json"), 403,
                     "permission_denied")

    @pytest.mark.parametrize("method, path", [("put", "/api/v1/labels/"), ("delete", "/api/v1/photos/"),
                                              ("get", "/api/v1/volunteers/")])
    def test_405(self, api, method, path):
        assert_error(getattr(api, method)(path), 405, "method_not_allowed")

    def test_413(self, api, label, settings):
        settings.PHOTO_MAX_BYTES = 2048
        assert_error(upload(api, image_bytes(size=(400, 300)), label="mug"), 413, "too_large")

    def test_415_for_a_file(self, api, label):
        assert_error(upload(api, b"GIF89a" + b"\0" * 100, label="mug"), 415, "unsupported", ["image"])

    def test_415_for_a_json_body_where_multipart_is_expected(self, api):
        assert_error(api.post("/api/v1/photos/", {"label": "mug"}, format="json"), 415, "unsupported_media_type")

    def test_429(self, settings):
        from rest_framework.throttling import ScopedRateThrottle

        rates = {**ScopedRateThrottle.THROTTLE_RATES, "anon_signup": "1/hour"}
        import unittest.mock as mock

        with mock.patch.object(ScopedRateThrottle, "THROTTLE_RATES", rates):
            APIClient().post("/api/v1/auth/token/", {"username": "x", "password": "y"}, format="json")
            response = APIClient().post("/api/v1/auth/token/", {"username": "x", "password": "y"}, format="json")
        assert_error(response, 429, "throttled")

    def test_500_from_a_view_is_in_the_shape_and_says_nothing_internal(self, monkeypatch):
        def broken():
            raise RuntimeError("secret internal detail")

        monkeypatch.setattr(selectors, "label_list_active", broken)
        response = APIClient().get("/api/v1/labels/")
        error = assert_error(response, 500, "server_error")
        assert "secret" not in response.content.decode()
        assert error["fields"] == {}

    def test_500_outside_drf_is_in_the_shape(self, monkeypatch):
        from collector import apis

        def broken(*args, **kwargs):
            raise RuntimeError("secret internal detail")

        monkeypatch.setattr(apis.LabelListApi, "dispatch", broken)
        response = Client(raise_request_exception=False).get("/api/v1/labels/")
        assert_error(response, 500, "server_error")
        assert "secret" not in response.content.decode()

    def test_validation_errors_name_each_field(self, api):
        response = api.post("/api/v1/photos/", {"predicted_confidence": "7", "captured_at": "yesterday"},
                            format="multipart")
        error = assert_error(response, 400, "invalid", ["image", "label", "predicted_confidence", "captured_at"])
        assert all(isinstance(v, list) and v and all(isinstance(m, str) for m in v) for v in error["fields"].values())

    def test_unknown_label_is_a_422(self, api, label):
        assert_error(upload(api, image_bytes(), label="no-such-label"), 422, "unknown_label", ["label"])

    def test_reviewer_errors_are_in_the_shape_too(self):
        assert_error(client_for(make_reviewer()).post("/api/v1/photos/1/review/", {}, format="json"), 400, "invalid",
                     ["decision"])


HUGE = "9" * 30


@pytest.mark.django_db
class TestHugeIdsInUrls:
    """Ids beyond any integer column are a 404, not a database overflow (500)."""

    @pytest.mark.parametrize("path", [f"/api/v1/photos/{HUGE}/", f"/api/v1/photos/{HUGE}/thumbnail/",
                                      "/api/v1/photos/9223372036854775808/"])
    def test_get(self, api, path):
        assert_error(api.get(path), 404, "not_found")

    def test_review(self):
        response = client_for(make_reviewer()).post(f"/api/v1/photos/{HUGE}/review/", {"decision": "approve"},
                                                    format="json")
        assert_error(response, 404, "not_found")

    def test_page_number(self, api):
        assert_error(api.get(f"/api/v1/photos/?page={HUGE}"), 404, "not_found")
