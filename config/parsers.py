"""DRF's JSON parser with a nesting limit: a body nested 100,000 deep is a 400, not a RecursionError.

json's C decoder raises RecursionError past Python's recursion limit (about
1,000 levels); bodies just under it parse, and then anything that walks them
recursively (serializers, the error handler's field flattening) can blow up
later. No request of this API nests deeper than a few levels, so anything past
JSON_MAX_DEPTH is refused right after parsing, with an iterative walk.
"""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

JSON_MAX_DEPTH = 32


def json_depth_exceeds(value, limit: int = JSON_MAX_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {JSON_MAX_DEPTH} levels.") from None
        if json_depth_exceeds(data):
            raise ParseError(f"JSON parse error - nested deeper than {JSON_MAX_DEPTH} levels.")
        return data
