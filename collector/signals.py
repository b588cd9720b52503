"""How collector tells other apps about photos without importing them.

All but photo_predicted are sent inside the database transaction that makes
the change, so a receiver's writes (points, for example) commit or roll back
with it.
Receiving apps connect to them in their AppConfig.ready (docs/decisions.md).
"""

from django.dispatch import Signal

# Before anything is stored. kwargs: user, label, challenge_id (int or None), now.
# A receiver refuses the upload by raising a config.domain_errors kind (Unprocessable,
# with its own code); the API maps it to a status, pages show its message.
photo_upload_validating = Signal()

# A new photo row exists. kwargs: photo.
photo_created = Signal()

# A photo's status or label changed. kwargs: photo, old_status, new_status,
# old_label_id, reviewer (a user or None).
photo_status_changed = Signal()

# A volunteer account became a bootstrap account (photos_import): its photos
# keep training models but earn nothing from now on, points already earned
# included. kwargs: user.
volunteer_became_bootstrap = Signal()

# Which labels are needed most (issue 19): collector asks, challenges answers with the rule its daily
# rotation picks by (training's recall and confusions, then the targets). kwargs: labels (the active Label
# rows, each with approved_count). A receiver returns {slug: {"rank": 1.., "recall": float or None,
# "confused_with": slug or None, "hint": str}}; without one, labels keep their order by name.
labels_ranking = Signal()

# The server's own prediction for a photo at its upload was stored (collector.models.PhotoPrediction,
# at_upload; training's photos_predict job), sent after that transaction commits, unlike the signals above:
# the receiver settles the photo's points in a transaction of its own (the stumped bonus). kwargs: photo_id.
photo_predicted = Signal()
