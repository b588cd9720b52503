"""The Content-Security-Policy middleware, with one allowance for the staff-only admin.

The admin pages of our apps (review queue, training runs, newsletter editions)
size thumbnails and buttons with inline style attributes, which a nonce cannot
cover. Under /admin/ the policy therefore also allows inline styles; scripts
stay as strict as everywhere else (files, or the response's nonce).
"""

from __future__ import annotations

from csp.constants import UNSAFE_INLINE
from csp.middleware import CSPMiddleware as _CSPMiddleware


class CSPMiddleware(_CSPMiddleware):
    def get_policy_parts(self, request, response, report_only=False):
        parts = super().get_policy_parts(request, response, report_only)
        if request.path.startswith("/admin/"):
            update = dict(parts.update or {})
            update["style-src"] = [*update.get("style-src", []), UNSAFE_INLINE]
            parts.update = update
        return parts
