"""Input and output shapes of the model-delivery API."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers


class VariantQuery(serializers.Serializer):
    variant = serializers.ChoiceField(
        choices=list(settings.TRAINING_VARIANT_NAMES), required=False,
        help_text="Which export: int8 (smallest, uint8 input), float16, dynamic (int8 weights) or float32 "
                  "(.tflite files), or coreml (a zipped Core ML .mlpackage for iOS). "
                  "Default: TRAINING_DEFAULT_VARIANT (int8).",
    )


class InputSpecOutput(serializers.Serializer):
    height = serializers.IntegerField()
    width = serializers.IntegerField()
    resize = serializers.ChoiceField(choices=["center_crop", "stretch"],
                                     help_text="center_crop: crop the largest centred square, then resize.")
    dtype = serializers.ChoiceField(choices=["uint8", "float32"],
                                    help_text="uint8: raw RGB 0-255; float32: (pixel - mean) / std per channel.")
    mean = serializers.ListField(child=serializers.FloatField(), help_text="Per channel, RGB")
    std = serializers.ListField(child=serializers.FloatField(), help_text="Per channel, RGB")


class ClassMetricsOutput(serializers.Serializer):
    precision = serializers.FloatField()
    recall = serializers.FloatField()
    support = serializers.IntegerField()


class VariantMetricsOutput(serializers.Serializer):
    # null (and per_class empty) for coreml: Core ML runs only on Apple systems, so that file is not evaluated.
    accuracy = serializers.FloatField(allow_null=True,
                                      help_text="Top-1 of this very file in LiteRT on the version's test split")
    latency_ms = serializers.FloatField(allow_null=True, help_text="Mean CPU latency per image on the training host")
    test_examples = serializers.IntegerField(allow_null=True)
    per_class = serializers.DictField(child=ClassMetricsOutput(), help_text="label -> precision, recall, support")


class ManifestOutput(serializers.Serializer):
    version = serializers.IntegerField()
    variant = serializers.CharField()
    sha256 = serializers.CharField(help_text="sha256 of the file at download_url (.tflite, or the Core ML zip)")
    size = serializers.IntegerField(help_text="Bytes")
    download_url = serializers.URLField(help_text="Presigned (expires after S3_PRESIGN_TTL) on S3; served here otherwise")
    created_at = serializers.DateTimeField()
    labels = serializers.ListField(child=serializers.CharField(), help_text="Label slugs in output-index order")
    input = InputSpecOutput()
    metrics = VariantMetricsOutput()
    min_app_version = serializers.CharField()


class ModelVariantSummaryOutput(serializers.Serializer):
    variant = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)


class ModelVersionOutput(serializers.Serializer):
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    published_at = serializers.DateTimeField()
    in_service = serializers.BooleanField()
    strategy = serializers.CharField()
    dataset_version = serializers.IntegerField()
    labels = serializers.ListField(child=serializers.CharField())
    min_app_version = serializers.CharField()
    variants = ModelVariantSummaryOutput(many=True)
