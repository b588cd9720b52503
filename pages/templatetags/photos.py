"""Template filters for photo rows: the row rules of collector.models, not a copy of them."""

from django import template

from collector.selectors import volunteer_is

register = template.Library()


@register.filter
def taken_by(volunteer_id, user) -> bool:
    """``{% if p.volunteer_id|taken_by:user %}``: collector.models.volunteer_is (Photo.is_owned_by's rule)."""
    return volunteer_is(volunteer_id, user)
