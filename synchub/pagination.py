from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """`count/next/previous/results` pages; clients choose `page_size` up to a bound."""

    page_size_query_param = "page_size"
    max_page_size = 1000
