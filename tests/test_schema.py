"""The OpenAPI schema: generated without a single warning (CI fails on one), served, and browsable offline."""

import re

import pytest
from django.core.management import call_command
from django.test import Client


@pytest.mark.django_db
class TestSchema:
    def test_it_generates_without_warnings_and_validates(self, tmp_path):
        out = tmp_path / "openapi.yaml"
        call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(out))
        text = out.read_text()
        assert text.startswith("openapi: 3")
        for path in ("/api/v1/photos/:", "/api/v1/photos/{photo_id}/review/:", "/api/v1/volunteers/:", "/api/v1/me/:",
                     "/api/v1/labels/:", "/api/v1/auth/token/:"):
            assert path in text, path

    def test_it_is_served(self):
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        assert response.status_code == 200
        schema = response.json()
        assert schema["info"]["title"] == "Crowdlens API"
        upload = schema["paths"]["/api/v1/photos/"]["post"]
        assert "multipart/form-data" in upload["requestBody"]["content"]
        assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in upload["parameters"])

    def test_the_docs_page_loads_its_assets_from_this_server(self):
        client = Client()
        response = client.get("/api/docs/")
        assert response.status_code == 200
        html = response.content.decode()
        assert "cdn" not in html.lower() and "jsdelivr" not in html and "unpkg" not in html
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
        assert any("swagger-ui-bundle" in a for a in assets), assets
        for asset in assets:
            assert client.get(asset).status_code == 200, asset


def _schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def _undescribed(schema: dict, where: str, components: dict, seen: set) -> list[str]:
    """Properties (followed through $ref, arrays and allOf) that have no description."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return []
        seen.add(name)
        return _undescribed(components[name], name, components, seen)
    missing = []
    for name, prop in (schema.get("properties") or {}).items():
        if not prop.get("description"):
            missing.append(f"{where}.{name}")
        missing += _undescribed(prop, f"{where}.{name}", components, seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            missing += _undescribed(schema[key], where, components, seen)
    for sub in schema.get("allOf", []) + schema.get("oneOf", []) + schema.get("anyOf", []):
        missing += _undescribed(sub, where, components, seen)
    return missing


@pytest.mark.django_db
class TestSchemaDocumentsTheApi:
    """What a phone team reads in the schema, and what the clients they generate rely on."""

    def test_every_operation_has_a_summary(self):
        missing = [name for name, op in _operations(_schema()) if not op.get("summary")]
        assert missing == []

    def test_every_field_and_parameter_has_a_description(self):
        schema = _schema()
        components = schema["components"]["schemas"]
        missing = _undescribed({"properties": {}}, "", components, set())
        for name in components:
            missing += _undescribed({"$ref": f"#/components/schemas/{name}"}, name, components, set())
        for name, op in _operations(schema):
            missing += [f"{name} parameter {p['name']}" for p in op.get("parameters", []) if not p.get("description")]
        assert sorted(set(missing)) == []

    def test_a_label_field_says_it_is_a_label_slug(self):
        components = _schema()["components"]["schemas"]
        for component in ("PhotoOutput", "PhotoUploadInputRequest", "ChallengeOutput"):
            assert "slug" in components[component]["properties"]["label"]["description"], component

    def test_the_photo_list_is_documented_as_the_page_it_answers(self):
        schema = _schema()
        ok = schema["paths"]["/api/v1/photos/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        page = schema["components"]["schemas"][ok["$ref"].rsplit("/", 1)[1]]
        assert set(page["properties"]) == {"count", "next", "previous", "results"}
        assert page["properties"]["results"]["items"] == {"$ref": "#/components/schemas/PhotoOutput"}
        params = [p["name"] for p in schema["paths"]["/api/v1/photos/"]["get"]["parameters"]]
        assert sorted(params) == ["page", "status"]

    def test_errors_have_one_documented_shape(self):
        schema = _schema()
        error = schema["components"]["schemas"]["Error"]
        detail = schema["components"]["schemas"]["ErrorDetail"]
        assert error["required"] == ["error"]
        assert set(detail["properties"]) == {"code", "message", "fields"}
        for name, op in _operations(schema):
            for status, response in op["responses"].items():
                if status >= "400":
                    body = response["content"]["application/json"]["schema"]
                    assert body == {"$ref": "#/components/schemas/Error"}, (name, status)

    def test_every_operation_documents_the_errors_its_view_can_answer(self):
        """401 wherever a token is read, 403/404/409/413/415/422/429 where the view can answer them."""
        ops = dict(_operations(_schema()))

        def statuses(name):
            return {int(s) for s in ops[name]["responses"] if s >= "400"}

        for name, op in ops.items():
            if op["security"] != []:
                assert 401 in statuses(name), name
            if "requestBody" in op:
                assert {400, 413, 415} <= statuses(name), name
            if "{" in name:
                assert 404 in statuses(name), name
            assert 503 in statuses(name), name  # any operation, with the database down (test_database_unavailable)
        assert statuses("POST /api/v1/photos/") >= {400, 401, 403, 413, 415, 422, 429, 503}
        assert statuses("POST /api/v1/auth/token/") >= {400, 429}
        assert "invalid_credentials" in ops["POST /api/v1/auth/token/"]["responses"]["400"]["description"]
        assert statuses("POST /api/v1/photos/{photo_id}/review/") >= {400, 401, 403, 404, 409}
        assert statuses("POST /api/v1/votes/{photo_id}/") >= {401, 403, 404, 409}
        assert statuses("DELETE /api/v1/me/") >= {401, 403}
        assert statuses("GET /api/v1/photos/") >= {400, 401, 404}  # 404: a page past the last
        assert 401 in statuses("GET /api/v1/labels/")  # public, but a bad token is still refused
        assert 401 not in statuses("GET /api/v1/models/latest/")  # reads no credentials at all
        assert "Retry-After" in ops["POST /api/v1/photos/"]["responses"]["429"]["headers"]

    def test_public_operations_need_no_credentials(self):
        """AllowAny views show no lock; the few that answer more to a signed-in caller say so in their text."""
        from drf_spectacular.generators import SchemaGenerator
        from rest_framework.permissions import AllowAny

        ops = dict(_operations(_schema()))
        checked = 0
        generator = SchemaGenerator()
        generator._initialise_endpoints()
        for path, _regex, method, instance in generator._get_paths_and_endpoints():
            if f"{method} {path}" not in ops:  # the schema and docs views themselves
                continue
            if not any(isinstance(p, AllowAny) for p in instance.get_permissions()):
                assert ops[f"{method} {path}"]["security"] not in ([], [{}]), (method, path)
                continue
            checked += 1
            assert ops[f"{method} {path}"]["security"] == [], (method, path)
            if getattr(instance, "credentials_optional", False):
                assert "Public: works without credentials. A caller who sends their token anyway" in \
                    ops[f"{method} {path}"]["description"], (method, path)
        assert checked >= 10
        for name in ("GET /api/v1/labels/", "GET /api/v1/leaderboard/", "POST /api/v1/newsletter/subscribe/",
                     "GET /api/v1/photos/{photo_id}/thumbnail/"):
            assert ops[name]["security"] == [], name
        assert "own row" in ops["GET /api/v1/leaderboard/"]["description"]
