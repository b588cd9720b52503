"""The OpenAPI schema is the phone teams' contract: schemathesis sends generated requests to every operation.

Each request goes in-process to the real WSGI application (Django's full
middleware stack, the real database, real files), signed in with a real
token (a reviewer's for the review operation), against real data from the
factories (labels, approved and pending photos, today's challenge, a
published model with its file). Four checks on every response:

- ``not_a_server_error``: no 5xx, whatever the request;
- ``status_code_conformance``: every status the API answers is documented;
- ``response_schema_conformance``: the body matches the documented schema;
- ``content_type_conformance``: in the documented media type (JSON errors, not an HTML page).

Bounded so that CI is deterministic and quick (see docs/decisions.md): a few
generated examples per operation plus schemathesis' deterministic coverage
cases (boundary values, missing and wrong-typed fields), derandomized, no
example database.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import make_label, make_photo, make_reviewer, make_volunteer

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
# Generated examples per operation, on top of the deterministic coverage cases (about 1,000 requests in
# all, under a minute). API_CONTRACT_EXAMPLES=300 runs a deeper search by hand (several thousand requests, minutes).
MAX_EXAMPLES = int(os.environ.get("API_CONTRACT_EXAMPLES", "10"))


def _published_model(labels: list[str]) -> None:
    """Model version 1 in service with an int8 file in storage, as training.services publishes it."""
    import hashlib

    from django.utils import timezone

    from collector import storage
    from training.models import DatasetVersion, ModelFile, ModelVersion
    from training.services.publishing import model_file_keys

    dataset = DatasetVersion.objects.create(fingerprint="contract", cutoff=timezone.now(), labels=labels)
    version = ModelVersion.objects.create(
        version=1, status="published", in_service=True, dataset_version=dataset, strategy="head_only",
        labels=labels, published_at=timezone.now(),
        metrics={"int8": {"accuracy": 0.9, "latency_ms": 3.5, "test_examples": 20,
                          "per_class": {slug: {"precision": 0.9, "recall": 0.9, "support": 10} for slug in labels}}},
    )
    data = bytes(range(256)) * 16  # the API serves the bytes; it never parses them
    keys = model_file_keys(1, "int8")
    storage.save(keys["model_key"], data)
    ModelFile.objects.create(model_version=version, variant="int8", sha256=hashlib.sha256(data).hexdigest(),
                             size_bytes=len(data), input_spec={"height": 224, "width": 224, "resize": "center_crop",
                                                               "dtype": "uint8", "mean": [0.0] * 3, "std": [1.0] * 3},
                             **keys)


# transactional_db: each request commits as in production, so on_commit work (emails, file deletion)
# runs, and the WSGI handler may close its connection between requests without losing the data.
@pytest.fixture
def api_data(transactional_db):
    """What a phone meets in a running installation: labels, photos of several states, today's challenge,
    a published model, a volunteer and a reviewer."""
    from rest_framework.authtoken.models import Token

    from collector.models import PhotoStatus
    from tests.challenges.helpers import make_challenge

    daisy, tulip = make_label("daisy"), make_label("tulip")
    volunteer = make_volunteer("phone-user", password="phone-pass-1", email="phone@example.org")
    make_photo(volunteer=volunteer, label=daisy, status=PhotoStatus.APPROVED)
    make_photo(volunteer=volunteer, label=daisy)
    make_photo(label=tulip, status=PhotoStatus.APPROVED)  # someone else's: votable
    make_challenge(label=daisy)
    _published_model(["daisy", "tulip"])
    reviewer = make_reviewer("reviewer")
    return {
        "volunteer": Token.objects.get_or_create(user=volunteer.user)[0].key,
        "reviewer": Token.objects.get_or_create(user=reviewer)[0].key,
    }


@pytest.fixture
def api_schema(api_data):
    from config.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/", application)


schema = schemathesis.pytest.from_fixture("api_schema")


# The health checks are off on purpose: the data fixture is shared by all examples of an operation
# (function_scoped_fixture), and multipart bodies with image bytes are slow and large to generate.
@pytest.mark.django_db(transaction=True)  # the throttle counters live in the database cache: cleared per test
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_contract(case, api_data):
    token = api_data["reviewer"] if case.operation.path.endswith("/review/") else api_data["volunteer"]
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
