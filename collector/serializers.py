from __future__ import annotations

from rest_framework import serializers

from collector.models import Label, Photo, PhotoStatus, RejectionReason
from collector.password_validation import password_problems
from config.fields import EmailOrEmptyField, QuerySerializer, StrictBooleanField


class VolunteerRegisterInput(serializers.Serializer):
    display_name = serializers.RegexField(
        r"^[\w.@+-]{2,40}$", max_length=40,
        error_messages={"invalid": "2 to 40 letters, digits or . @ + - _ (no spaces)."},
        help_text="The public name and the username for signing in: 2 to 40 letters, digits or . @ + - _; "
                  "unique whatever the case.",
    )
    # Passwords are never trimmed (as in Django's own forms): "        " must reach the validators,
    # not become "" (no password at all), and a password with a trailing space must sign in as typed.
    password = serializers.CharField(required=False, allow_blank=True, write_only=True, max_length=128,
                                     trim_whitespace=False, style={"input_type": "password"},
                                     help_text="At least 8 characters, not a common one, not all digits or spaces, "
                                               "not like the display name. Optional: without it the token is the only way in.")
    email = EmailOrEmptyField(required=False, allow_blank=True, max_length=254,
                              help_text="Optional; used for the newsletter and account notices only.")
    consent_training = StrictBooleanField(
        help_text="Must be true: the photos are collected to train models.")
    consent_public_credit = StrictBooleanField(
        required=False, default=False,
        help_text='Show the display name on leaderboards and galleries; otherwise "Volunteer #<n>".')

    def validate_password(self, value):
        # Checked here as well as in volunteer_register so that one answer lists every field at fault.
        if value:
            name, email = self.initial_data.get("display_name"), self.initial_data.get("email")
            problems = password_problems(value, display_name=name if isinstance(name, str) else "",
                                         email=email if isinstance(email, str) else "")
            if problems:
                raise serializers.ValidationError(problems)
        return value

    def validate_consent_training(self, value):
        if value is not True:
            raise serializers.ValidationError("Must be true: photos are collected to train models.")
        return value


_TOKEN_HELP = "The API token: send it as `Authorization: Token <token>`. It does not expire."


class VolunteerRegisterOutput(serializers.Serializer):
    id = serializers.IntegerField(help_text="The account's id.")
    display_name = serializers.CharField(help_text="The display name as registered.")
    token = serializers.CharField(help_text=_TOKEN_HELP)


class AuthTokenInput(serializers.Serializer):
    username = serializers.CharField(max_length=150, help_text="The display name (or a staff username).")
    password = serializers.CharField(max_length=128, trim_whitespace=False, style={"input_type": "password"},
                                     help_text="The account's password.")
    otp_token = serializers.RegexField(r"^[0-9a-zA-Z ]{1,32}$", required=False, write_only=True,
                                       help_text="For an account with a second factor (staff): the code from its "
                                                 "authenticator app, or one of its recovery codes.")


class AuthTokenOutput(serializers.Serializer):
    token = serializers.CharField(help_text=_TOKEN_HELP)


class PhotoCountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField(help_text="Photos waiting for review.")
    approved = serializers.IntegerField(help_text="Photos approved (they count for training and points).")
    rejected = serializers.IntegerField(help_text="Photos rejected by a reviewer.")


class MeOutput(serializers.Serializer):
    id = serializers.IntegerField(help_text="The account's id.")
    display_name = serializers.CharField(help_text="The public name, also the username for signing in.")
    # CharField, not EmailField: the schema's "format: email" would refuse the empty string sent for no email.
    email = serializers.CharField(allow_blank=True, help_text="The account's email address; empty when none was given.")
    consent_training = serializers.BooleanField(help_text="Consent to train models on the photos (always true).")
    consent_public_credit = serializers.BooleanField(help_text="Whether the display name is shown publicly.")
    is_reviewer = serializers.BooleanField(help_text="Whether the account may review photos.")
    date_joined = serializers.DateTimeField(help_text="When the account was created.")
    photos = PhotoCountsSerializer(help_text="The account's photos by review status.")


class MeUpdateInput(serializers.Serializer):
    email = EmailOrEmptyField(required=False, allow_blank=True, max_length=254,
                              help_text="A new email address; empty removes it.")
    consent_public_credit = StrictBooleanField(required=False, help_text="Show the display name publicly (or stop).")


class LabelOutput(serializers.ModelSerializer):
    approved_count = serializers.IntegerField(help_text="Photos of this label approved so far.")
    prototype_target = serializers.IntegerField(source="effective_prototype_target",
                                                help_text="Approved photos needed for a first (prototype) model.")
    production_target = serializers.IntegerField(source="effective_production_target",
                                                 help_text="Approved photos needed for a production model.")
    prototype_progress = serializers.SerializerMethodField(
        help_text="approved_count / prototype_target, at most 1 (4 decimals).")
    production_progress = serializers.SerializerMethodField(
        help_text="approved_count / production_target, at most 1 (4 decimals).")
    need_rank = serializers.IntegerField(help_text="1 for the label the model needs most, then 2, ...: the list's order.")
    recall = serializers.FloatField(allow_null=True, help_text="Share of this label's test photos the model in "
                                                               "service recognised (latest measurement); null before any.")
    confused_with = serializers.CharField(allow_null=True, help_text="The label (slug) the model most often takes "
                                                                     "this one for; null if none.")
    hint = serializers.CharField(help_text="Why this label is needed, in a volunteer's words.")

    class Meta:
        model = Label
        fields = ["slug", "name", "description", "approved_count", "prototype_target", "production_target",
                  "prototype_progress", "production_progress", "need_rank", "recall", "confused_with", "hint"]
        extra_kwargs = {
            "slug": {"help_text": "The label's identifier: what `label` means everywhere in the API."},
            "name": {"help_text": "The label's name for people."},
            "description": {"help_text": "What to photograph; may be empty."},
        }

    def get_prototype_progress(self, label) -> float:
        return round(min(1.0, label.approved_count / label.effective_prototype_target), 4)

    def get_production_progress(self, label) -> float:
        return round(min(1.0, label.approved_count / label.effective_production_target), 4)


class PhotoUploadInput(serializers.Serializer):
    # Multipart has no null: an optional field is left out (or sent empty, which counts as left out).
    image = serializers.FileField(allow_empty_file=False, max_length=255,
                                  help_text="The photo: JPEG, PNG, WebP or HEIC, up to PHOTO_MAX_BYTES.")
    label = serializers.SlugField(max_length=64, help_text="The slug of an active label (`slug` in the label list).")
    challenge = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1,
                                         help_text="The id of the open challenge this photo enters, if any.")
    captured_at = serializers.DateTimeField(required=False,
                                            help_text="When the photo was taken, as the phone knows it.")
    device_model = serializers.CharField(required=False, allow_blank=True, max_length=100,
                                         help_text="The phone's model, for diagnostics.")
    app_version = serializers.CharField(required=False, allow_blank=True, max_length=40,
                                        help_text="The app's version, for diagnostics.")
    predicted_label = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                            help_text="The label slug the on-device model predicted.")
    predicted_confidence = serializers.FloatField(required=False, min_value=0.0, max_value=1.0,
                                                  help_text="The on-device model's confidence, 0 to 1.")
    # The columns' ranges: a larger number is the client's mistake (400), not a database error (500).
    model_version = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1,
                                             help_text="The version of the on-device model that predicted.")

    def validate_predicted_confidence(self, value):
        if value is not None and value != value:  # NaN passes min/max comparisons
            raise serializers.ValidationError("A number between 0 and 1 is required.")
        return value


class PhotoOutput(serializers.ModelSerializer):
    label = serializers.SlugRelatedField(slug_field="slug", read_only=True,
                                         help_text="The slug of the photo's label (reviewers may have changed it).")
    thumbnail_url = serializers.SerializerMethodField(help_text="Absolute URL of the JPEG thumbnail.")
    near_duplicate_of = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The id of an earlier photo this one looks almost the same as; null if none.")
    challenge = serializers.IntegerField(source="challenge_id", allow_null=True,
                                         help_text="The id of the challenge it entered; null if none.")

    class Meta:
        model = Photo
        fields = ["id", "status", "label", "sha256", "width", "height", "thumbnail_url", "near_duplicate_of",
                  "created_at", "challenge", "rejection_reason", "reviewed_at", "captured_at"]
        extra_kwargs = {
            "id": {"help_text": "The photo's id."},
            "status": {"help_text": "Where the photo stands in review."},
            "sha256": {"help_text": "SHA-256 of the uploaded bytes, hex: the same bytes are the same photo."},
            "width": {"help_text": "Width in pixels as displayed (after EXIF orientation)."},
            "height": {"help_text": "Height in pixels as displayed (after EXIF orientation)."},
            "created_at": {"help_text": "When the photo was uploaded."},
            "rejection_reason": {"help_text": "Why a reviewer rejected it; empty unless rejected."},
            "reviewed_at": {"help_text": "When it was last reviewed; null while pending."},
            "captured_at": {"help_text": "When the photo was taken, as the phone sent it; null if not sent."},
        }

    def get_thumbnail_url(self, photo) -> str:
        path = photo.thumbnail_url
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class PhotoReviewInput(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject"], help_text="approve or reject. Sending the "
                                       "decision the photo already carries changes nothing and records nothing.")
    reason = serializers.ChoiceField(choices=RejectionReason.choices, required=False, allow_blank=True, default="",
                                     help_text="Why it is rejected: required when rejecting.")
    label = serializers.SlugField(required=False, allow_blank=True, max_length=64,
                                  help_text="A label slug to relabel the photo with; empty keeps its label.")
    note = serializers.CharField(required=False, allow_blank=True, max_length=500, default="",
                                 help_text="A note kept in the review history; the volunteer sees it on their page.")
    # "A rejection needs a reason" is the review service's rule (collector.services.review_input_check).


class PhotoStatusFilter(QuerySerializer):
    status = serializers.ChoiceField(choices=PhotoStatus.choices, required=False,
                                     help_text="Only photos in this review status; all when absent.")


class VerificationPhotoOutput(serializers.Serializer):
    id = serializers.IntegerField(help_text="The photo's id: send it back as `photo`.")
    thumbnail_url = serializers.CharField(help_text="Absolute URL of the JPEG thumbnail (verifiers may fetch it).")


class VerificationNextOutput(serializers.Serializer):
    photo = VerificationPhotoOutput(help_text="The photo to judge.")
    label = serializers.CharField(help_text="The label to judge: is this photo a `label`?")


class VerificationInput(serializers.Serializer):
    photo = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="The photo judged.")
    verdict = serializers.ChoiceField(choices=["agree", "disagree", "unsure"],
                                      help_text="agree: the label is right; disagree: it is wrong; unsure.")
    label = serializers.SlugField(required=False, allow_blank=True, max_length=64,
                                  help_text="With agree: the label shown (optional). With disagree: the label it "
                                            "really is, if you know.")


class VerificationOutput(serializers.Serializer):
    id = serializers.IntegerField(help_text="The verdict's id.")
    photo = serializers.IntegerField(source="photo_id", help_text="The photo judged.")
    verdict = serializers.CharField(help_text="agree, disagree or unsure.")
    label = serializers.CharField(source="label.slug", allow_null=True, default=None,
                                  help_text="The label given with a disagree verdict; null if none.")
    created_at = serializers.DateTimeField(help_text="When it was recorded.")


class ReviewQueueFilter(serializers.Serializer):
    flag = serializers.ChoiceField(choices=["likely_mislabeled"], required=False,
                                   help_text="likely_mislabeled: the approved photos the nightly label audit sent "
                                             "back, most likely mislabelled first. Absent: the pending queue.")
    label = serializers.SlugField(required=False, max_length=64, help_text="Only photos of this label.")


class ReviewQueueItemOutput(serializers.Serializer):
    id = serializers.IntegerField(help_text="The photo's id.")
    status = serializers.CharField(help_text="pending, or approved for a photo the audit sent back.")
    label = serializers.CharField(source="label.slug", help_text="The photo's label.")
    thumbnail_url = serializers.SerializerMethodField(help_text="Absolute URL of the JPEG thumbnail.")
    created_at = serializers.DateTimeField(help_text="When the photo was uploaded.")
    flag = serializers.CharField(source="audit_flag", help_text="likely_mislabeled, or empty.")
    suggested_label = serializers.SerializerMethodField(
        help_text="The label the audit's model gives it (flagged photos); null otherwise.")
    score = serializers.FloatField(source="audit_score", allow_null=True,
                                   help_text="How likely the label is wrong, 0..1 (flagged photos); null otherwise.")
    disputed = serializers.BooleanField(help_text="Community verifiers disagreed: decide it first.")
    crowd_label = serializers.SerializerMethodField(help_text="The label the verifiers suggest; null if none.")

    def get_thumbnail_url(self, photo) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(photo.thumbnail_url) if request else photo.thumbnail_url

    def get_suggested_label(self, photo) -> str | None:
        return photo.audit_suggested_label.slug if photo.audit_suggested_label_id else None

    def get_crowd_label(self, photo) -> str | None:
        return photo.crowd_label.slug if photo.crowd_label_id else None
