"""training.hparams: the one place settings become the backbone and the hyper-parameters a run records."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from training import selectors
from training.hparams import SETTING_BY_FIELD, backbone_from_settings, hparams_from_settings


class TestHparamsFromSettings:
    def test_it_reads_every_knob_from_its_setting(self, settings):
        settings.TRAINING_EPOCHS_HEAD = 3
        settings.TRAINING_MIXUP_ALPHA = 0.0
        settings.TRAINING_AUGMENT_FLIP = False
        settings.TRAINING_SEED = 7
        hparams = hparams_from_settings()
        assert (hparams.epochs_head, hparams.mixup_alpha, hparams.augment_flip, hparams.seed) == (3, 0.0, False, 7)

    def test_a_setting_left_unset_keeps_the_tuned_default(self, settings):
        settings.TRAINING_BATCH_SIZE = None
        assert hparams_from_settings().batch_size == 32

    def test_a_key_that_is_not_a_hyper_parameter_fails_loudly_instead_of_being_dropped(self, settings):
        settings.TRAINING_EPOCH_HEAD = 3  # a typo'd field would otherwise silently stop having any effect
        with pytest.raises(ImproperlyConfigured) as error:
            hparams_from_settings(setting_by_field={**SETTING_BY_FIELD, "epoch_head": "TRAINING_EPOCH_HEAD"})
        assert "epoch_head (from TRAINING_EPOCH_HEAD)" in str(error.value)


class TestBackboneFromSettings:
    def test_runs_and_embeddings_name_the_same_backbone(self, settings):
        settings.TRAINING_ALPHA, settings.TRAINING_INPUT_SIZE, settings.TRAINING_BASE_WEIGHTS = 0.5, 96, "none"
        backbone = backbone_from_settings()
        assert (backbone.alpha, backbone.input_size, backbone.base_weights) == (0.5, 96, "none")
        assert hparams_from_settings().backbone == backbone
        before = selectors.embedding_cache_id()
        settings.TRAINING_ALPHA = 0.35  # another backbone: the embeddings of the first one no longer match
        assert selectors.embedding_cache_id() != before
        assert hparams_from_settings().backbone == backbone_from_settings() != backbone
