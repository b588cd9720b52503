"""Writes of the collector app, one module per concept (volunteers, labels, photos, review).

Callers import this package (``from collector import services``); each name
below is defined in exactly one of its modules.
"""

from collector.services.labels import LabelImportResult, labels_import
from collector.services.photos import PhotoCreateResult, photo_create
from collector.services.predictions import photo_prediction_record
from collector.services.review import (
    REVIEWER_PERMISSIONS,
    REVIEWERS_GROUP,
    ReviewResult,
    decision_already_taken,
    photo_decide,
    photo_relabel,
    photo_review,
    photos_flag_likely_mislabeled,
    reviewer_account_create,
    review_input_check,
    reviewers_group_sync,
)
from collector.services.verification import (
    GoldAgreement,
    VerificationItem,
    VerificationResult,
    verification_next,
    verification_submit,
    verifier_gold_agreement,
    verifier_is_eligible,
)
from collector.services.volunteers import (
    photos_withdraw_for_user,
    volunteer_delete,
    volunteer_delete_own_account,
    volunteer_get_or_create_for_user,
    volunteer_mark_bootstrap,
    volunteer_register,
)

__all__ = [
    "REVIEWERS_GROUP", "REVIEWER_PERMISSIONS", "LabelImportResult", "PhotoCreateResult", "labels_import",
    "photo_create", "photo_decide", "photo_relabel", "ReviewResult", "decision_already_taken",
    "review_input_check", "photo_review", "photos_withdraw_for_user", "reviewer_account_create",
    "reviewers_group_sync",
    "volunteer_delete", "volunteer_delete_own_account", "volunteer_get_or_create_for_user", "volunteer_mark_bootstrap",
    "volunteer_register",
    "photo_prediction_record", "photos_flag_likely_mislabeled", "GoldAgreement", "VerificationItem", "VerificationResult", "verification_next", "verification_submit",
    "verifier_gold_agreement", "verifier_is_eligible",
]
