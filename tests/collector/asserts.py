"""Assertions shared by the collector API tests."""


def assert_error(response, status, code=None, fields=()):
    """The response is an error of this status in the one error shape; returns the error object."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    assert isinstance(body["error"]["fields"], dict), body
    if code:
        assert body["error"]["code"] == code, body
    for field in fields:
        assert field in body["error"]["fields"], body
    return body["error"]
