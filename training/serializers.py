"""Input and output shapes of the model-delivery API."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from config.fields import QuerySerializer


class VariantQuery(QuerySerializer):
    variant = serializers.ChoiceField(
        choices=list(settings.TRAINING_VARIANT_NAMES), required=False,
        help_text="Which export: int8 (smallest, uint8 input), float16, dynamic (int8 weights) or float32 "
                  "(.tflite files), or coreml (a zipped Core ML .mlpackage for iOS). "
                  "Default: the version's own default variant, chosen by evidence at publishing (the manifest's "
                  "default_variant says which and why), unless TRAINING_DEFAULT_VARIANT names one.",
    )


INSTALL_ID_PATTERN = r"^[\x21-\x7e]{1,128}$"


class LatestQuery(VariantQuery):
    install_id = serializers.RegexField(
        INSTALL_ID_PATTERN, required=False,
        help_text="The phone's stable install id (1-128 printable ASCII characters, no spaces), e.g. a UUID made "
                  "at first launch; the X-Install-Id header says the same and wins. It picks the device's "
                  "staged-rollout bucket; without it the phone gets the version in service for all.",
    )


class FieldAccuracyLabelOutput(serializers.Serializer):
    label = serializers.CharField(help_text="The label the reviewer approved (slug)")
    samples = serializers.IntegerField(help_text="Approved photos of this label the phone had classified")
    matched = serializers.IntegerField(help_text="Of those, how many the phone predicted as this label")
    accuracy = serializers.FloatField(help_text="matched / samples")


class FieldAccuracyOutput(serializers.Serializer):
    version = serializers.IntegerField(help_text="The published model version the phones' predictions came from")
    samples = serializers.IntegerField(help_text="Approved photos uploaded with this version's own prediction")
    matched = serializers.IntegerField(help_text="Of those, how many predictions were the label the reviewer approved")
    accuracy = serializers.FloatField(allow_null=True, help_text="matched / samples; null without samples")
    per_label = FieldAccuracyLabelOutput(many=True, help_text="The same per approved label, sorted by label")


class InputSpecOutput(serializers.Serializer):
    height = serializers.IntegerField(help_text="Input height in pixels.")
    width = serializers.IntegerField(help_text="Input width in pixels.")
    resize = serializers.ChoiceField(choices=["center_crop", "stretch"],
                                     help_text="center_crop: crop the largest centred square, then resize.")
    dtype = serializers.ChoiceField(choices=["uint8", "float32"],
                                    help_text="uint8: raw RGB 0-255; float32: (pixel - mean) / std per channel.")
    mean = serializers.ListField(child=serializers.FloatField(), help_text="Per channel, RGB")
    std = serializers.ListField(child=serializers.FloatField(), help_text="Per channel, RGB")


class ClassMetricsOutput(serializers.Serializer):
    precision = serializers.FloatField(help_text="Of the test photos predicted as this label, the share that were.")
    recall = serializers.FloatField(help_text="Of the test photos of this label, the share predicted as it.")
    support = serializers.IntegerField(help_text="Test photos of this label.")


class VariantMetricsOutput(serializers.Serializer):
    # null (and per_class empty) for coreml: Core ML runs only on Apple systems, so that file is not evaluated.
    accuracy = serializers.FloatField(allow_null=True,
                                      help_text="Top-1 of this very file in LiteRT on the version's test split, or after "
                                                "cross-validation the estimate (see method; null for coreml)")
    latency_ms = serializers.FloatField(allow_null=True, help_text="Mean CPU latency per image on the training host (null for coreml)")
    test_examples = serializers.IntegerField(allow_null=True, help_text="Photos in the version's test split (null for coreml)")
    per_class = serializers.DictField(child=ClassMetricsOutput(), help_text="label -> precision, recall, support")
    interval = serializers.ListField(child=serializers.FloatField(), allow_null=True, required=False,
                                     help_text="95 % confidence interval of accuracy, [low, high] (Wilson); null if not measured")
    photos = serializers.IntegerField(allow_null=True, required=False,
                                      help_text="How many photos the accuracy rests on")
    method = serializers.CharField(allow_null=True, required=False,
                                   help_text="test_split: this file on the test photos; cross_validation: k-fold "
                                             "cross-validation over all photos (the file trained on all of them), "
                                             "less this file's measured drop against float32")


class DefaultVariantOutput(serializers.Serializer):
    variant = serializers.CharField(help_text="What a request without ?variant= gets for this version")
    why = serializers.CharField(help_text="The evidence: the smallest file shown to answer like float32 within "
                                          "TRAINING_INT8_MAX_DROP, else the next larger one")


class ManifestOutput(serializers.Serializer):
    version = serializers.IntegerField(help_text="The model version number")
    variant = serializers.CharField(help_text="The export this manifest describes (int8, float16, dynamic, float32, coreml)")
    sha256 = serializers.CharField(help_text="sha256 of the file at download_url (.tflite, or the Core ML zip)")
    size = serializers.IntegerField(help_text="Bytes")
    download_url = serializers.URLField(help_text="Presigned (expires after S3_PRESIGN_TTL) on S3; served here otherwise")
    created_at = serializers.DateTimeField(help_text="When the version was trained")
    labels = serializers.ListField(child=serializers.CharField(), help_text="Label slugs in output-index order")
    input = InputSpecOutput(help_text="How to prepare a photo for this file's input tensor")
    metrics = VariantMetricsOutput(help_text="This file's evaluation")
    min_app_version = serializers.CharField(help_text="The oldest app version that can run it; empty: any")
    default_variant = DefaultVariantOutput(help_text="Which variant this version gives phones by default, and why")


class ModelVariantSummaryOutput(serializers.Serializer):
    variant = serializers.CharField(help_text="int8, float16, dynamic or float32")
    sha256 = serializers.CharField(help_text="sha256 of the .tflite bytes")
    size = serializers.IntegerField(help_text="Bytes")
    accuracy = serializers.FloatField(allow_null=True, help_text="Top-1 on the test split; null if not measured")


class ModelVersionOutput(serializers.Serializer):
    version = serializers.IntegerField(help_text="The model version number")
    created_at = serializers.DateTimeField(help_text="When the version was trained")
    published_at = serializers.DateTimeField(help_text="When it was published")
    in_service = serializers.BooleanField(help_text="Whether this is the version phones get as latest")
    strategy = serializers.CharField(help_text="How it was trained: head_only (a head on the last activation's "
                                     "pooled features), several_layers (a head on several layers' pooled features) "
                                     "or fine_tune")
    dataset_version = serializers.IntegerField(help_text="The id of the dataset version it was trained on")
    labels = serializers.ListField(child=serializers.CharField(), help_text="Label slugs in output-index order")
    min_app_version = serializers.CharField(help_text="The oldest app version that can run it; empty: any")
    variants = ModelVariantSummaryOutput(many=True, help_text="The files published for this version")
