"""Daily challenges, the points ledger, pre-aggregated scores, votes and features.

The ledger (``PointEntry``) is the source of truth for every score: one row per
change, never edited except for the ``active`` flag that marks a grant as taken
back (the taking back is itself a new, negative row pointing at the grant).
``Score`` rows are a cache of ledger sums per (period, volunteer), kept in step
in the same transaction as each ledger row and rebuildable from the ledger with
``challenges.services.scores.scores_recompute``.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from collector.models import Photo


class Challenge(models.Model):
    """One day's challenge: a label to photograph, in a window of local time."""

    date = models.DateField(unique=True, help_text="The day in TIME_ZONE this challenge belongs to.")
    label = models.ForeignKey("collector.Label", on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=120)
    prompt = models.CharField(max_length=300, help_text='e.g. "Photograph a mug somewhere nobody would expect one"')
    description = models.TextField(blank=True)
    starts_at = models.DateTimeField(
        blank=True, help_text="Empty: CHALLENGE_ROTATE_AT on the date, in TIME_ZONE."
    )
    ends_at = models.DateTimeField(blank=True, help_text="Empty: CHALLENGE_ROTATE_AT on the next day, in TIME_ZONE.")
    bonus_points = models.PositiveIntegerField(
        blank=True, help_text="Extra points for each approved photo entered; empty means CHALLENGE_BONUS_POINTS."
    )
    planned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Staff member who planned it; empty when the rotate job chose the label.",
    )
    selection_note = models.CharField(max_length=300, blank=True, help_text="Why this label was chosen.")
    opened_at = models.DateTimeField(null=True, blank=True, help_text="When the rotate job opened it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-date"]
        indexes = [models.Index(fields=["starts_at", "ends_at"])]
        constraints = [models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="challenge_ends_after_start")]

    def __str__(self) -> str:
        return f"{self.date}: {self.title}"

    def clean(self):
        from challenges.periods import challenge_window

        if self.date is None:
            return
        start, end = challenge_window(self.date)
        if self.starts_at is None:
            self.starts_at = start
        if self.ends_at is None:
            self.ends_at = end
        if self.bonus_points is None:
            self.bonus_points = settings.CHALLENGE_BONUS_POINTS
        if self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "A challenge must end after it starts."})

    def save(self, *args, **kwargs):
        if self.starts_at is None or self.ends_at is None or self.bonus_points is None:
            self.clean()
        super().save(*args, **kwargs)

    def is_open(self, now: dt.datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def status_at(self, now: dt.datetime) -> str:
        if now < self.starts_at:
            return "upcoming"
        if now >= self.ends_at:
            return "closed"
        return "open"


class PointReason(models.TextChoices):
    APPROVED = "approved", "Photo approved"
    CHALLENGE_BONUS = "challenge_bonus", "Challenge bonus"
    FEATURED = "featured", "Featured by staff"
    VOTE = "vote", "Vote received"
    NOVELTY = "novelty", "Novelty bonus"
    VERIFY = "verify", "Verdict matched the final decision"
    STUMPED = "stumped", "Stumped the model"


class PointEntry(models.Model):
    """One change of a volunteer's points: the ledger.

    A grant has points >= 0 and ``active=True`` until it is taken back; taking
    back writes a second row with the negated points, the grant's
    ``earned_at`` and ``challenge`` (so it leaves the same periods it counted
    in) and ``reverses`` pointing at the grant, and flips the grant's
    ``active`` to False. Partial unique indexes make a second active grant of
    the same kind for the same photo (or vote) impossible, whatever races.
    """

    volunteer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="point_entries")
    photo = models.ForeignKey("collector.Photo", null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=20, choices=PointReason.choices)
    points = models.IntegerField()
    earned_at = models.DateTimeField(help_text="The moment the points count for (day, week, month).")
    challenge = models.ForeignKey(Challenge, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    vote = models.ForeignKey("Vote", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    verification = models.ForeignKey("collector.Verification", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+", help_text="The verdict a verify grant is for (to its verifier).")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Who caused it: the reviewer, the voter, the staff member who featured.",
    )
    active = models.BooleanField(default=True, help_text="A grant not (yet) taken back. Always False on take-back rows.")
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="reversed_by",
        help_text="The grant this row takes back.",
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(help_text="When the row was written.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "point entries"
        indexes = [
            models.Index(fields=["volunteer", "-created_at"]),
            models.Index(fields=["photo", "active"]),
            models.Index(fields=["earned_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["photo", "reason"], condition=Q(active=True) & ~Q(reason__in=["vote", "verify"]),
                name="pointentry_one_active_grant_per_photo_reason",
            ),
            models.UniqueConstraint(
                fields=["vote"], condition=Q(active=True, reason="vote"), name="pointentry_one_active_grant_per_vote"
            ),
            models.UniqueConstraint(
                fields=["verification"], condition=Q(active=True, reason="verify"),
                name="pointentry_one_active_grant_per_verification",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.points:+d} {self.reason} for user {self.volunteer_id}"

    @property
    def is_take_back(self) -> bool:
        return self.reverses_id is not None

    @property
    def approved_photos_delta(self) -> int:
        """+1 for an approval grant, -1 for its take-back, 0 otherwise: how the row moves "approved photos"."""
        if self.reason != PointReason.APPROVED:
            return 0
        return -1 if self.is_take_back else 1

    @staticmethod
    def approved_photos_delta_expression() -> models.Case:
        """``approved_photos_delta`` as a query expression, for sums over the ledger in SQL."""
        return models.Case(
            models.When(reason=PointReason.APPROVED, reverses__isnull=True, then=models.Value(1)),
            models.When(reason=PointReason.APPROVED, reverses__isnull=False, then=models.Value(-1)),
            default=models.Value(0),
            output_field=models.IntegerField(),
        )


class Score(models.Model):
    """Pre-aggregated ledger sums per (period, volunteer), for fast leaderboards.

    ``period`` keys: ``d2026-11-25`` (day), ``w2026-11-23`` (week starting
    that Monday), ``m2026-11`` (month), ``all``, ``c<challenge id>``. Days,
    weeks and months are in TIME_ZONE.
    """

    period = models.CharField(max_length=16)
    volunteer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    points = models.BigIntegerField(default=0)
    approved_photos = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["period", "volunteer"], name="score_one_row_per_period_volunteer")]
        indexes = [
            # Serves ORDER BY points DESC, approved_photos DESC, volunteer_id for one period,
            # and the own-rank count.
            models.Index(fields=["period", "-points", "-approved_photos", "volunteer"], name="score_rank_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.period} user {self.volunteer_id}: {self.points}"


class RankBucket(models.Model):
    """How many volunteers have exactly ``points`` in a period (points > 0): the folded histogram.

    The own rank is the number of volunteers ahead; summing these buckets
    above the caller's points costs one row per distinct score instead of one
    per volunteer. Writers never update these rows (no hot rows): they append
    RankBucketChange rows, which ``rank_buckets_compact`` folds in here.
    """

    period = models.CharField(max_length=16)
    points = models.BigIntegerField()
    volunteers = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["period", "points"], name="rankbucket_one_row_per_points")]

    def __str__(self) -> str:
        return f"{self.period}: {self.volunteers} at {self.points}"


class RankBucketChange(models.Model):
    """+1/-1 for a volunteer entering/leaving a points bucket; append-only until folded into RankBucket."""

    period = models.CharField(max_length=16)
    points = models.BigIntegerField()
    delta = models.IntegerField()

    class Meta:
        indexes = [models.Index(fields=["period", "points"], name="rankbucketchange_idx")]


class Vote(models.Model):
    """A volunteer's vote for someone else's approved photo; deleted when taken back."""

    voter = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    photo = models.ForeignKey("collector.Photo", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["voter", "photo"], name="vote_once_per_photo")]
        indexes = [models.Index(fields=["photo"])]

    def __str__(self) -> str:
        return f"vote by {self.voter_id} for photo {self.photo_id}"


class PhotoOfTheDay(models.Model):
    """Staff picked a photo as "photo of the day" (at most once per photo; "featured" in the UI and points).

    Named so that "feature" means one thing in the code: an embedding (training's feature store)."""

    photo = models.OneToOneField("collector.Photo", on_delete=models.CASCADE, related_name="+")
    featured_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    featured_on = models.DateField(help_text="The day in TIME_ZONE it is photo of the day.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-featured_on", "-id"]
        verbose_name, verbose_name_plural = "photo of the day", "photos of the day"

    def __str__(self) -> str:
        return f"photo {self.photo_id} featured on {self.featured_on}"


class PhotoNovelty(models.Model):
    """How far an approved photo lies from its label's centre in feature space (computed once)."""

    photo = models.OneToOneField("collector.Photo", on_delete=models.CASCADE, related_name="+")
    label = models.ForeignKey("collector.Label", on_delete=models.CASCADE, related_name="+")
    distance = models.FloatField(help_text="Cosine distance from the mean of the label's normalised features.")
    percentile = models.FloatField(help_text="Share of the label's photos closer to the centre (0..1).")
    compared_with = models.PositiveIntegerField(help_text="How many photos of the label made the centre.")
    points = models.PositiveIntegerField()
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "photo novelties"

    def __str__(self) -> str:
        return f"photo {self.photo_id}: novelty {self.percentile:.2f} ({self.points} points)"



class ApprovedPhoto(Photo):
    """Approved photos as staff see them in the admin's gallery (vote counts, feature action)."""

    class Meta:
        proxy = True
        verbose_name = "approved photo (gallery)"
        verbose_name_plural = "approved photos (gallery)"
