"""Wrong labels come back: the nightly label audit on generated photos with planted label errors sends them
back to the review queue (out of the next dataset, listed most likely first), a relabel or rejection takes their
points back through the ledger, a kept photo is never flagged again; outliers and near-duplicates are listed.

The photos are real uploads; their backbone features are planted in the feature cache as the night's run would
have left them (clusters per label, the planted errors in another label's cluster), so the audit's statistics
are what is tested, not a tiny network's accuracy. That the night stores its network's features of every photo
is tested on the session's one real run (tests/training/ml/test_train_and_export.py, TestModelFeatures) and in
test_pipeline.py's nights."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command

from challenges.models import PointEntry
from collector import selectors as collector_selectors
from collector.models import Photo, PhotoStatus
from tests.collector.test_admin_review import group_reviewer, logged_in
from tests.factories import client_for, image_bytes, make_label, make_photo, make_reviewer, make_volunteer
from training import selectors
from training.feature_store import DbFeatureStore
from training.ml.features import encode
from training.models import FeatureCache, LabelAudit, RunStatus, TrainingRun

pytestmark = pytest.mark.django_db
SLUGS = ["daisy", "rose", "tulip"]


def points_for(photo) -> int:
    return sum(PointEntry.objects.filter(photo=photo).values_list("points", flat=True))


@pytest.fixture
def planted(settings):
    """60 approved photos of three labels by four volunteers; four of them carry the wrong label (their
    features lie in another label's cluster), two of different volunteers are near-identical, one is unusual."""
    settings.LABEL_AUDIT_MAX_PER_NIGHT = 10
    rng = np.random.default_rng(7)
    centres = {slug: rng.normal(size=32) for slug in SLUGS}
    labels = {slug: make_label(slug) for slug in SLUGS}
    volunteers = [make_volunteer() for _ in range(4)]
    reviewer = make_reviewer()
    photos, vectors, errors = [], {}, {}
    seed = 0
    for slug in SLUGS:
        for i in range(20):
            seed += 1
            photo = make_photo(volunteer=volunteers[i % 4], label=labels[slug], status=PhotoStatus.APPROVED,
                               image=image_bytes(seed=5000 + seed), reviewer=reviewer)
            truth = slug
            if i < 2 and slug != "tulip":  # planted: a tulip sent (and approved) as a daisy or a rose
                truth = "tulip"
                errors[photo.pk] = "tulip"
            vectors[photo.pk] = centres[truth] + rng.normal(scale=0.35, size=32)
            photos.append(photo)
    twins = (photos[10], photos[11])  # different volunteers (i % 4), the same scene
    vectors[twins[1].pk] = vectors[twins[0].pk] + rng.normal(scale=1e-3, size=32)
    odd = photos[45]  # a tulip unlike any other
    vectors[odd.pk] = centres["tulip"] + rng.normal(scale=0.35, size=32) + 4.0 * rng.normal(size=32)
    cache_id = selectors.embedding_cache_id()
    DbFeatureStore().put_many({p.sha256: encode(vectors[p.pk].astype(np.float32)[None]) for p in photos}, cache_id)
    return {"photos": photos, "errors": errors, "twins": twins, "odd": odd, "reviewer": reviewer}


def test_the_audit_sends_planted_label_errors_back_most_likely_first(planted, capsys):
    call_command("label_audit", "--no-progress")
    out = capsys.readouterr().out
    audit = LabelAudit.objects.get()
    errors = planted["errors"]
    assert audit.photos == 60 and audit.labels == 3, out
    assert set(audit.flagged[:len(errors)]) == set(errors), ("the first ones sent back are the planted errors",
                                                             [(i["photo"], i["score"]) for i in audit.issues], errors, audit.photos)
    assert len(audit.flagged) <= 10
    flagged = Photo.objects.filter(pk__in=errors)
    assert all(p.audit_flag == "likely_mislabeled" and p.audit_suggested_label.slug == "tulip" for p in flagged)
    assert all(p.status == PhotoStatus.APPROVED for p in flagged), "nothing is relabelled or rejected by itself"
    # Out of the next dataset (and so of the novelty bonus) until a reviewer decides.
    assert not set(errors) & set(collector_selectors.photos_approved().values_list("pk", flat=True))
    # Reviewers list them, most likely first, with the suggested label and the score.
    body = client_for(make_reviewer()).get("/api/v1/review/queue/?flag=likely_mislabeled").json()
    listed = body["results"]
    assert {item["id"] for item in listed[:len(errors)]} == set(errors)
    scores = [item["score"] for item in listed]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    assert all(item["suggested_label"] == "tulip" and item["flag"] == "likely_mislabeled"
               for item in listed if item["id"] in errors)
    # The queue page says why.
    page = logged_in(group_reviewer("rita")).get("/admin/collector/photo/review/?flag=likely_mislabeled")
    assert "Likely mislabelled</strong>: the model says tulip (0." in page.content.decode()
    # Staff see outliers and near-duplicate clusters across volunteers.
    assert planted["odd"].pk in [o["photo"] for o in audit.outliers]
    assert [planted["twins"][0].pk, planted["twins"][1].pk] in audit.duplicate_clusters
    assert "sent back to review" in out
    # ... and beside the novelty bonus.
    from challenges.models import PhotoNovelty
    from django.contrib.auth import get_user_model

    odd = planted["odd"]
    PhotoNovelty.objects.create(photo=odd, label=odd.label, distance=0.9, percentile=0.99, compared_with=20, points=5)
    admin_user = get_user_model().objects.create_superuser("boss", "boss@example.org", "boss-pass-1")
    novelty_page = logged_in(admin_user).get("/admin/challenges/photonovelty/").content.decode()
    assert "yes (z " in novelty_page


def test_a_relabel_or_rejection_takes_the_points_back_and_a_kept_photo_is_not_flagged_again(planted, settings):
    call_command("label_audit", "--no-progress")
    relabelled, rejected, kept, *_ = sorted(planted["errors"])
    for pk in (relabelled, rejected, kept):
        assert points_for(Photo.objects.get(pk=pk)) == settings.POINTS_PHOTO_APPROVED
    staff = client_for(make_reviewer())
    assert staff.post(f"/api/v1/photos/{relabelled}/review/", {"decision": "approve", "label": "tulip"},
                      format="json").status_code == 200
    assert staff.post(f"/api/v1/photos/{rejected}/review/", {"decision": "reject", "reason": "wrong_label"},
                      format="json").status_code == 200
    assert staff.post(f"/api/v1/photos/{kept}/review/", {"decision": "approve"}, format="json").status_code == 200
    photos = {p.pk: p for p in Photo.objects.filter(pk__in=[relabelled, rejected, kept])}
    assert (photos[relabelled].label.slug, photos[relabelled].audit_outcome) == ("tulip", "relabelled")
    assert photos[rejected].audit_outcome == "rejected" and photos[kept].audit_outcome == "kept"
    assert not any(p.audit_flag for p in photos.values())
    assert points_for(photos[relabelled]) == 0, "taken back through the ledger"
    assert points_for(photos[rejected]) == 0
    assert points_for(photos[kept]) == settings.POINTS_PHOTO_APPROVED
    assert PointEntry.objects.filter(photo_id__in=[relabelled, rejected], points__lt=0).count() == 2
    trained_on = set(collector_selectors.photos_approved().values_list("pk", flat=True))
    assert relabelled in trained_on and kept in trained_on and rejected not in trained_on
    call_command("label_audit", "--no-progress")
    assert kept not in LabelAudit.objects.order_by("-id").first().flagged, "a reviewer's verdict stands"


def test_the_nightly_cap_holds(planted, settings):
    settings.LABEL_AUDIT_MAX_PER_NIGHT = 2
    call_command("label_audit", "--no-progress")
    assert Photo.objects.filter(audit_flag="likely_mislabeled").count() == 2


def test_after_a_fine_tuning_night_the_audit_also_reads_that_nights_network(planted):
    """The frozen backbone cannot tell the planted errors (here: embeddings without any structure); the night's
    fine-tuned network can, and the audit, which averages a classifier on each, sends them back."""
    photos = planted["photos"]
    rng = np.random.default_rng(11)
    store = DbFeatureStore()
    night_id = selectors.embedding_cache_id().replace(":pooled:", ":pooled:trained=0123456789abcdef:")
    # The planted clusters become the night's network's features, and the embeddings noise.
    store.put_many(store.get_many([p.sha256 for p in photos], selectors.embedding_cache_id()), night_id)
    FeatureCache.objects.filter(cache_id=selectors.embedding_cache_id()).delete()
    store.put_many({p.sha256: encode(rng.normal(size=32).astype(np.float32)[None]) for p in photos},
                   selectors.embedding_cache_id())
    run = TrainingRun.objects.create(status=RunStatus.SUCCEEDED, strategy="fine_tune", model_features=night_id)
    call_command("label_audit", "--no-progress")
    audit = LabelAudit.objects.get()
    assert audit.features == f"the frozen backbone's embeddings and run #{run.pk}'s fine-tuned network"
    errors = planted["errors"]
    assert audit.photos == 60
    assert set(audit.flagged[:len(errors)]) == set(errors), [(i["photo"], i["score"]) for i in audit.issues]


def test_before_any_run_stored_its_networks_features_the_audit_reads_the_embeddings(planted):
    call_command("label_audit", "--no-progress")
    assert LabelAudit.objects.get().features.startswith("the frozen backbone's embeddings (no run")


@pytest.mark.django_db(False)
def test_a_small_collection_with_full_size_features_is_audited():
    """36 photos of 1,280-d features (a new installation's first night): fewer photos than the 128 components."""
    from training.ml.label_audit import audit

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(3, 1280))
    labels = np.repeat([0, 1, 2], 12)
    features = (centres[labels] + rng.normal(scale=0.5, size=(36, 1280))).astype(np.float32)
    given = labels.copy()
    given[0] = 1  # a planted error
    findings = audit([features, features * 2], given)
    assert findings.label_issues[0][0] == 0 and findings.label_issues[0][2] == 0
