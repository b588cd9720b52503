"""The one page shape of every paginated list in the API: ``?page=N`` in, ``{count, next, previous, results}`` out."""

from __future__ import annotations

from rest_framework import pagination

from config.domain_errors import Invalid


class PageNumberPagination(pagination.PageNumberPagination):
    """DRF's page-number pagination, with its schema described for the clients generated from it."""

    page_query_description = "Page number, from 1; past the last page is a 404."

    def get_page_number(self, request, paginator):
        # DRF takes `?page=` (sent empty) for page 1; the schema says an integer, so it is a mistake.
        if request.query_params.get(self.page_query_param) == "":
            raise Invalid("page must be a whole number from 1.", fields={self.page_query_param: ["May not be empty."]})
        return super().get_page_number(request, paginator)

    def get_paginated_response_schema(self, schema):
        described = super().get_paginated_response_schema(schema)
        properties = described["properties"]
        properties["count"]["description"] = "Items in the whole list (all pages)."
        properties["next"]["description"] = "URL of the next page; null on the last page."
        properties["previous"]["description"] = "URL of the previous page; null on the first page."
        properties["results"] = {**properties["results"], "description": "The items of this page."}
        return described
