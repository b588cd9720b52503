from django.apps import AppConfig


class PagesConfig(AppConfig):
    """The volunteers' web pages: the top floor. It reads the other apps through their selectors and
    writes through their services; no app imports it."""

    name = "pages"
    verbose_name = "Volunteers' web pages"
