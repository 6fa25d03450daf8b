"""The review page: a small ASGI app over the groups (imported only by ``catalog review``), with its
thumbnails, templates and static files."""
