# The SMTP server and the in-transaction worker of the notification tests.
from tests.notifications.conftest import smtp, worker

__all__ = ["smtp", "worker"]
