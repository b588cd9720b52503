from django.urls import path

from training import apis

urlpatterns = [
    path("models/", apis.ModelListApi.as_view(), name="model-list"),
    path("models/latest/", apis.ModelLatestApi.as_view(), name="model-latest"),
    path("models/<int:version>/", apis.ModelDetailApi.as_view(), name="model-detail"),
    path("models/<int:version>/field-accuracy/", apis.ModelFieldAccuracyApi.as_view(), name="model-field-accuracy"),
    path("models/<int:version>/<str:variant>/download/", apis.ModelDownloadApi.as_view(), name="model-download"),
]
