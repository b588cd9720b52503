from django.db import connection
from django.http import JsonResponse
from django.urls import path


def healthz(request):
    """Liveness and database reachability, for load balancers and `make run`'s wait loop."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


urlpatterns = [path("", healthz, name="healthz")]
