from django.apps import AppConfig


class ChallengesConfig(AppConfig):
    name = "challenges"
    verbose_name = "Challenges, points and leaderboards"

    def ready(self):
        # Every receiver is connected here, explicitly, with a dispatch_uid (docs/decisions.md: signals).
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_delete

        from challenges import receivers
        from collector.models import Photo
        from collector.signals import photo_status_changed, photo_upload_validating, volunteer_became_bootstrap

        photo_upload_validating.connect(receivers.validate_challenge_entry,
                                        dispatch_uid="challenges.validate_challenge_entry")
        photo_status_changed.connect(receivers.settle_points, dispatch_uid="challenges.settle_points")
        volunteer_became_bootstrap.connect(receivers.take_back_bootstrap_points,
                                           dispatch_uid="challenges.take_back_bootstrap_points")
        pre_delete.connect(receivers.forget_user_scores, sender=get_user_model(),
                           dispatch_uid="challenges.forget_user_scores")
        pre_delete.connect(receivers.revoke_photo_points, sender=Photo, dispatch_uid="challenges.revoke_photo_points")
        from collector.signals import labels_ranking, photo_predicted

        photo_predicted.connect(receivers.settle_stumped_points, dispatch_uid="challenges.settle_stumped_points")

        labels_ranking.connect(receivers.rank_labels, dispatch_uid="challenges.rank_labels")
