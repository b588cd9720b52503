from __future__ import annotations

from rest_framework import serializers

from collector.models import Label, Photo, PhotoStatus, RejectionReason
from collector.password_validation import password_problems


class VolunteerRegisterInput(serializers.Serializer):
    display_name = serializers.RegexField(
        r"^[\w.@+-]{2,40}$", max_length=40,
        error_messages={"invalid": "2 to 40 letters, digits or . @ + - _ (no spaces)."},
    )
    # Passwords are never trimmed (as in Django's own forms): "        " must reach the validators,
    # not become "" (no password at all), and a password with a trailing space must sign in as typed.
    password = serializers.CharField(required=False, allow_blank=True, write_only=True, max_length=128,
                                     trim_whitespace=False, style={"input_type": "password"},
                                     help_text="Optional: without one the account signs in with its token only.")
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    consent_training = serializers.BooleanField()
    consent_public_credit = serializers.BooleanField(required=False, default=False)

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


class VolunteerRegisterOutput(serializers.Serializer):
    id = serializers.IntegerField()
    display_name = serializers.CharField()
    token = serializers.CharField()


class AuthTokenInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False, style={"input_type": "password"})


class AuthTokenOutput(serializers.Serializer):
    token = serializers.CharField()


class PhotoCountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    approved = serializers.IntegerField()
    rejected = serializers.IntegerField()


class MeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    display_name = serializers.CharField()
    email = serializers.EmailField(allow_blank=True)
    consent_training = serializers.BooleanField()
    consent_public_credit = serializers.BooleanField()
    is_reviewer = serializers.BooleanField()
    date_joined = serializers.DateTimeField()
    photos = PhotoCountsSerializer()


class MeUpdateInput(serializers.Serializer):
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    consent_public_credit = serializers.BooleanField(required=False)


class LabelOutput(serializers.ModelSerializer):
    approved_count = serializers.IntegerField()
    prototype_target = serializers.IntegerField(source="effective_prototype_target")
    production_target = serializers.IntegerField(source="effective_production_target")
    prototype_progress = serializers.SerializerMethodField()
    production_progress = serializers.SerializerMethodField()

    class Meta:
        model = Label
        fields = ["slug", "name", "description", "approved_count", "prototype_target", "production_target",
                  "prototype_progress", "production_progress"]

    def get_prototype_progress(self, label) -> float:
        return round(min(1.0, label.approved_count / label.effective_prototype_target), 4)

    def get_production_progress(self, label) -> float:
        return round(min(1.0, label.approved_count / label.effective_production_target), 4)


class PhotoUploadInput(serializers.Serializer):
    image = serializers.FileField(allow_empty_file=False, max_length=255)
    label = serializers.SlugField(max_length=64)
    challenge = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**63 - 1)
    captured_at = serializers.DateTimeField(required=False, allow_null=True)
    device_model = serializers.CharField(required=False, allow_blank=True, max_length=100)
    app_version = serializers.CharField(required=False, allow_blank=True, max_length=40)
    predicted_label = serializers.CharField(required=False, allow_blank=True, max_length=64)
    predicted_confidence = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    # The columns' ranges: a larger number is the client's mistake (400), not a database error (500).
    model_version = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**31 - 1)

    def validate_predicted_confidence(self, value):
        if value is not None and value != value:  # NaN passes min/max comparisons
            raise serializers.ValidationError("A number between 0 and 1 is required.")
        return value


class PhotoOutput(serializers.ModelSerializer):
    label = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    thumbnail_url = serializers.SerializerMethodField()
    near_duplicate_of = serializers.PrimaryKeyRelatedField(read_only=True)
    challenge = serializers.IntegerField(source="challenge_id", allow_null=True)

    class Meta:
        model = Photo
        fields = ["id", "status", "label", "sha256", "width", "height", "thumbnail_url", "near_duplicate_of",
                  "created_at", "challenge", "rejection_reason", "reviewed_at", "captured_at"]

    def get_thumbnail_url(self, photo) -> str:
        path = photo.thumbnail_url
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class PhotoReviewInput(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject"])
    reason = serializers.ChoiceField(choices=RejectionReason.choices, required=False, allow_blank=True, default="")
    label = serializers.SlugField(required=False, allow_blank=True, max_length=64)
    note = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")

    def validate(self, attrs):
        if attrs["decision"] == "reject" and not attrs.get("reason"):
            raise serializers.ValidationError({"reason": "Required when rejecting."})
        return attrs


class PhotoStatusFilter(serializers.Serializer):
    status = serializers.ChoiceField(choices=PhotoStatus.choices, required=False)
