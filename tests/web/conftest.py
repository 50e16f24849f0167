from tests.web.browser import browser, new_context, site

__all__ = ["browser", "new_context", "site"]
