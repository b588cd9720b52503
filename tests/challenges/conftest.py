import pytest


@pytest.fixture(autouse=True)
def _points_settings(settings):
    """Known point values, whatever the environment says, so tests state exact sums."""
    settings.POINTS_PHOTO_APPROVED = 10
    settings.CHALLENGE_BONUS_POINTS = 20
    settings.POINTS_PER_VOTE = 2
    settings.POINTS_FEATURED = 25
    settings.POINTS_NOVELTY_MAX = 15
    settings.NOVELTY_PERCENTILE = 0.75
    settings.NOVELTY_MIN_PHOTOS = 10
    settings.CHALLENGE_NO_REPEAT_DAYS = 7
    settings.CHALLENGE_ROTATE_AT = (0, 0)
    settings.PHOTO_UPLOAD_RATE = "100000/hour"
    yield settings
