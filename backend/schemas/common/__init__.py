from backend.schemas.common.pagination import Page, PageRequest, TimeRange

__all__ = ["Page", "PageRequest", "TimeRange"]
