from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import health
from config.errors import error_response
from config.two_factor import StaffSignInForm, session_is_verified

# The admin names the product (page titles, header, index); Django's defaults say "Django administration".
admin.site.site_header = "Crowdlens"
admin.site.site_title = "Crowdlens admin"
admin.site.index_title = "Review, training, challenges and newsletter"
# No app list down the side of every page: at 1280 px it took a quarter of the width and pushed the
# lists into sideways scrolling; the breadcrumbs and the index lead everywhere it did.
admin.site.enable_nav_sidebar = False
# Staff sign in with a code from their authenticator app where their account has one or STAFF_REQUIRE_2FA
# says so; a session signed in without one does not open the admin then (config.two_factor).
admin.site.login_form = StaffSignInForm
_admin_has_permission = admin.site.has_permission
admin.site.has_permission = lambda request: _admin_has_permission(request) and session_is_verified(request)


@csrf_exempt  # it changes nothing; without this a POST gets Django's HTML "CSRF verification failed" page
def api_not_found(request, *args, **kwargs):
    return error_response(404, "not_found", "Not found.")


api_v1 = [
    path("", include("collector.urls")),
    path("", include("training.urls")),
    path("", include("challenges.urls")),
    path("newsletter/", include("newsletter.urls")),
    # Last: any other /api/ path is a 404 in the error shape, even with DEBUG on
    # (Django's debug 404 page would otherwise answer in HTML). Only paths
    # ending in a slash, so APPEND_SLASH still redirects /api/v1/labels.
    re_path(r"^.*/$", api_not_found),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's set-up script as a file (script-src 'self');
    # its template still carries a small <style> block, allowed for this page only.
    path("api/docs/", csp_update({"style-src": [UNSAFE_INLINE]})(SpectacularSwaggerSplitView.as_view(url_name="schema")),
         name="api-docs"),
    path("healthz", health.readiness, name="healthz"),
    path("healthz/live", health.liveness, name="healthz-live"),
    # Web pages (the pages app: home, leaderboard, gallery, camera, sign-in; newsletter's own pages).
    path("newsletter/", include("newsletter.pages_urls")),
    path("", include("pages.urls")),
]

handler400 = "config.errors.handler400"
handler403 = "config.errors.handler403"
handler404 = "config.errors.handler404"
handler500 = "config.errors.handler500"
