"""How training tells other apps about its results without importing them (like collector.signals).

Receiving apps connect in their AppConfig.ready.
"""

from django.dispatch import Signal

# The server's own prediction for a photo was stored (training.models.PhotoPrediction), after its
# transaction committed. kwargs: photo_id.
photo_predicted = Signal()
