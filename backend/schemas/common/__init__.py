from backend.schemas.common.pagination import EVERYTHING, ListFilter, Page, PageRequest

__all__ = ["EVERYTHING", "ListFilter", "Page", "PageRequest"]
