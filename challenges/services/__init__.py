"""Writes of the challenges app, one module per concept:

* ``challenges``: which label the model needs most, the day's challenge, checking a challenge entry;
* ``points``: the points ledger (what a photo's owner should hold, written as differences; ``photo_lock``);
* ``scores``: Score rows and the rank histogram kept in step with the ledger, rebuilt from it (raw SQL);
* ``votes`` and ``features``: volunteers' votes, staff's photos of the day;
* ``novelty``: the bonus for photos far from their label's centre (numpy).

Callers outside the app use the names below (``from challenges import services``;
``services.vote_cast(...)``): this list is the app's write API, and the modules
behind it may move without their callers changing.
"""

from challenges.services.challenges import (
    LabelChoice, challenge_create, challenge_entry_check, challenge_label_choose, challenge_open_for_today,
    challenge_open_if_none,
)
from challenges.services.features import photo_feature, photo_feature_change, photo_unfeature
from challenges.services.novelty import NoveltyResult, novelty_award, novelty_points
from challenges.services.points import (
    bootstrap_points_take_back, on_photo_status_changed, photo_points_revoke, photo_points_settle,
)
from challenges.services.scores import (
    rank_buckets_compact, rank_buckets_rebuild, scores_forget_user, scores_recompute,
)
from challenges.services.votes import VoteResult, vote_cast, vote_withdraw

__all__ = [
    "LabelChoice", "challenge_create", "challenge_entry_check", "challenge_label_choose", "challenge_open_for_today",
    "challenge_open_if_none",
    "photo_feature", "photo_feature_change", "photo_unfeature",
    "NoveltyResult", "novelty_award", "novelty_points",
    "bootstrap_points_take_back", "on_photo_status_changed", "photo_points_revoke", "photo_points_settle",
    "rank_buckets_compact", "rank_buckets_rebuild", "scores_forget_user", "scores_recompute",
    "VoteResult", "vote_cast", "vote_withdraw",
]
