"""The Content-Security-Policy middleware, with one allowance for the staff-only admin.

The admin pages of our apps (review queue, training runs, newsletter editions)
size thumbnails and buttons with inline style attributes, which a nonce cannot
cover. Under /admin/ the policy therefore also allows inline styles; scripts
stay as strict as everywhere else (files, or the response's nonce).

The camera page runs the published model in the browser with MediaPipe's WebAssembly
(static/vendor/mediapipe/, docs/pages.md): compiling WebAssembly needs
'wasm-unsafe-eval' in script-src, which allows WebAssembly.compile/instantiate and nothing
else (no eval, no new Function); only /capture/ gets it.
"""

from __future__ import annotations

from csp.constants import UNSAFE_INLINE, WASM_UNSAFE_EVAL
from csp.middleware import CSPMiddleware as _CSPMiddleware

WASM_PAGE = "/capture/"


class CSPMiddleware(_CSPMiddleware):
    def get_policy_parts(self, request, response, report_only=False):
        parts = super().get_policy_parts(request, response, report_only)
        if request.path.startswith("/admin/"):
            update = dict(parts.update or {})
            update["style-src"] = [*update.get("style-src", []), UNSAFE_INLINE]
            parts.update = update
        if request.path == WASM_PAGE:
            update = dict(parts.update or {})
            update["script-src"] = [*update.get("script-src", []), WASM_UNSAFE_EVAL]  # added to the configured ones
            parts.update = update
        return parts
